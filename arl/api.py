"""The backend API's stable import path: `from arl.api import EvalBackend, EvalResult, SampleResult` (or the same
names from `arl`). The code lives in arl.evaluation.api."""

from arl.evaluation.api import EvalBackend, EvalResult, SampleResult

__all__ = ["EvalBackend", "EvalResult", "SampleResult"]
