"""arl: autonomous research loops with a sandboxed agent and a host that verifies."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["EvalBackend", "EvalResult", "SampleResult", "SplitBackend", "__version__"]
__version__ = "0.3.0"

if TYPE_CHECKING:
    from arl.evaluation.api import EvalBackend, EvalResult, SampleResult, SplitBackend


def __getattr__(name: str) -> Any:
    # The backend API loads on first use: the loop's steps start many times per experiment and never need it.
    if name in ("EvalBackend", "EvalResult", "SampleResult", "SplitBackend"):
        from arl.evaluation import api

        return getattr(api, name)
    raise AttributeError(f"module 'arl' has no attribute {name!r}")
