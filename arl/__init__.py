"""arl: autonomous research loops with a sandboxed agent and a host that verifies."""

from __future__ import annotations

from .api import EvalBackend, EvalResult, SampleResult

__all__ = ["EvalBackend", "EvalResult", "SampleResult", "__version__"]
__version__ = "0.3.0"
