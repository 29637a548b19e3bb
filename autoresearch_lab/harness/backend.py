"""autoresearch-lab's backend API, served by arl: the same classes with the same fields.

EvalResult and SampleResult are arl's own. EvalBackend is arl's, plus one allowance: early autoresearch-lab
backends define `evaluate(self, pipeline_dir, data_dir)` without `sample_ids`, and arl always passes it; such a
method is wrapped to accept (and ignore) it, since filtering samples is optional for a backend anyway."""

from __future__ import annotations

import functools
import inspect
from pathlib import Path
from typing import Any

import arl.evaluation.api
from arl.evaluation.api import EvalResult, SampleResult

__all__ = ["EvalBackend", "EvalResult", "SampleResult"]


class EvalBackend(arl.evaluation.api.EvalBackend):
    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        own = cls.__dict__.get("evaluate")
        if callable(own) and not _takes_sample_ids(own):
            cls.evaluate = _ignoring_sample_ids(own)  # pyright: ignore[reportAttributeAccessIssue]


def _takes_sample_ids(method: Any) -> bool:
    try:
        params = list(inspect.signature(method).parameters.values())
    except (TypeError, ValueError):
        return True  # cannot tell: call it as arl does
    if any(p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in params):
        return True
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return len(positional) >= 4  # self, pipeline_dir, data_dir, sample_ids


def _ignoring_sample_ids(method: Any) -> Any:
    @functools.wraps(method)
    def evaluate(self: Any, pipeline_dir: Path, data_dir: Path, sample_ids: list[str] | None = None) -> EvalResult:
        return method(self, pipeline_dir, data_dir)

    return evaluate
