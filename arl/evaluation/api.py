"""The backend API users write against: EvalBackend, EvalResult, SampleResult."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class SampleResult:
    sample_id: str
    score: float
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class EvalResult:
    score: float
    metrics: dict[str, float | int | str] = field(default_factory=dict)
    sample_results: list[SampleResult] = field(default_factory=list)


class EvalBackend:
    """Turns (pipeline, data) into a score. Lower is better unless `[lab] direction = "maximize"`."""

    def setup(self) -> None:
        """Called once before evaluations."""

    def evaluate(self, pipeline_dir: Path, data_dir: Path, sample_ids: list[str] | None = None) -> EvalResult:
        raise NotImplementedError("EvalBackend.evaluate must be implemented by the lab's backend")

    def teardown(self) -> None:
        """Always called after the evaluations, also when they failed."""
