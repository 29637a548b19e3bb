"""The backend API users write against: EvalBackend (one phase), SplitBackend (three), EvalResult, SampleResult."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

INPUT_FILE = "input.json"  # a sample's inputs, as SplitBackend.write_inputs writes them by default
OUTPUT_FILE = "output.json"  # a sample's output, as SplitBackend.run writes it by default
ERROR_FILE = "error.txt"  # why predict() failed on that sample


_DATACLASS = ("__dataclass_fields__", "__dataclass_params__")


class _LazyDataclass(type):
    """The results are dataclasses to whoever asks (`dataclasses.asdict`, `fields`, `replace`, a `@dataclass`
    subclass, as autoresearch-lab's were), made so on that first question: `arl eval` itself never imports the
    dataclasses module (with inspect, about 10 ms of every evaluation's start)."""

    if not TYPE_CHECKING:  # for the type checker these classes have the attributes they declare, and no others

        def __getattr__(cls, name: str) -> Any:
            if name in _DATACLASS:
                for base in cls.__mro__:
                    if "_shadow" in vars(base):
                        import dataclasses

                        twin = base._shadow(dataclasses)
                        for attr in _DATACLASS:
                            setattr(base, attr, getattr(twin, attr))
                        return getattr(cls, name)
            raise AttributeError(f"type object {cls.__name__!r} has no attribute {name!r}")


class _Record(metaclass=_LazyDataclass):
    """What a dataclass gives (arguments by position or name, ==, repr), written out."""

    _fields: tuple[str, ...] = ()

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return all(getattr(self, k) == getattr(other, k) for k in self._fields)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={getattr(self, k)!r}' for k in self._fields)})"

    if not TYPE_CHECKING:

        def __getattr__(self, name: str) -> Any:
            if name in _DATACLASS:  # dataclasses.fields(result) asks the instance
                return getattr(type(self), name)
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")


class SampleResult(_Record):
    _fields = __match_args__ = ("sample_id", "score", "error", "extra")

    def __init__(
        self, sample_id: str, score: float, error: str | None = None, extra: dict[str, Any] | None = None
    ) -> None:
        self.sample_id = sample_id
        self.score = score
        self.error = error
        self.extra: dict[str, Any] = {} if extra is None else extra

    @staticmethod
    def _shadow(dc: Any) -> type:
        """The same fields as a dataclass declares them (tests/test_eval.py checks that they agree)."""

        @dc.dataclass
        class SampleResult:
            sample_id: str
            score: float
            error: str | None = None
            extra: dict[str, Any] = dc.field(default_factory=dict)

        return SampleResult


class EvalResult(_Record):
    _fields = __match_args__ = ("score", "metrics", "sample_results")

    def __init__(
        self,
        score: float,
        metrics: dict[str, float | int | str] | None = None,
        sample_results: list[SampleResult] | None = None,
    ) -> None:
        self.score = score
        self.metrics: dict[str, float | int | str] = {} if metrics is None else metrics
        self.sample_results: list[SampleResult] = [] if sample_results is None else sample_results

    @staticmethod
    def _shadow(dc: Any) -> type:
        @dc.dataclass
        class EvalResult:
            score: float
            metrics: dict[str, float | int | str] = dc.field(default_factory=dict)
            sample_results: list[SampleResult] = dc.field(default_factory=list)

        return EvalResult


class EvalBackend:
    """Turns (pipeline, data) into a score. Lower is better unless `[lab] direction = "maximize"`.

    A backend that implements only `evaluate` runs the pipeline in the process that scores it: pipeline code can
    change the score or read the labels. SplitBackend is the one whose scores a pipeline cannot touch."""

    def setup(self) -> None:
        """Called once in each evaluation process, before the rest."""

    def evaluate(self, pipeline_dir: Path, data_dir: Path, sample_ids: list[str] | None = None) -> EvalResult:
        raise NotImplementedError("EvalBackend.evaluate must be implemented by the lab's backend")

    def teardown(self) -> None:
        """Always called after the evaluations, also when they failed."""


class SplitBackend(EvalBackend):
    """A backend in three parts, each run by arl in its own process (on the host's verification, its own container):

    1. trusted, sees the data: `samples` and `inputs` (or `write_inputs`) say what the pipeline may see;
    2. untrusted, sees the pipeline and the inputs only: `predict` (or `run`) produces each sample's output;
    3. trusted, sees the data and the outputs (as parsed, size-capped data), never the pipeline: `score` (or
       `score_sample`) and `summarize` make the EvalResult.

    The simple form is four methods: samples, inputs, predict, score. Override write_inputs / run / score_sample for
    files, batches or a pipeline in another language."""

    # What a sample whose output is missing or broken scores; None: such a sample fails the whole evaluation (a
    # pipeline must not improve its mean by failing the hard samples).
    failed_sample_score: float | None = None

    # -- 1. trusted: the data in, the pipeline's inputs out
    def samples(self, data_dir: Path) -> list[str]:
        """The ids of the samples in the data folder (file names are fine: they become folder names)."""
        raise NotImplementedError(f"{type(self).__name__}.samples must be implemented")

    def inputs(self, data_dir: Path, sample_id: str) -> Any:
        """What the pipeline may see of one sample, as a JSON-able value. Never the answer."""
        raise NotImplementedError(f"{type(self).__name__}.inputs (or write_inputs) must be implemented")

    def write_inputs(self, data_dir: Path, sample_id: str, folder: Path) -> None:
        """Write one sample's inputs into `folder` (its own, empty). Default: inputs() as input.json."""
        (folder / INPUT_FILE).write_text(json.dumps(self.inputs(data_dir, sample_id), allow_nan=False))

    # -- 2. untrusted: the pipeline and the inputs in, outputs out
    def predict(self, pipeline_dir: Path, inputs: Any) -> Any:
        """Run the pipeline on one sample's inputs; return its output as a JSON-able value."""
        raise NotImplementedError(f"{type(self).__name__}.predict (or run) must be implemented")

    def run(self, pipeline_dir: Path, inputs_dir: Path, outputs_dir: Path) -> None:
        """Run the pipeline on every sample: `inputs_dir/<id>/` in, `outputs_dir/<id>/` out (created empty).
        Default: predict() per sample, its value written as output.json, an exception as error.txt."""
        for sample in sorted(p for p in inputs_dir.iterdir() if p.is_dir()):
            out = outputs_dir / sample.name
            given = sample / INPUT_FILE
            try:
                value = self.predict(pipeline_dir, json.loads(given.read_text()) if given.is_file() else None)
                text = json.dumps(value, allow_nan=False)
            except Exception as e:  # one broken sample must not hide the others
                (out / ERROR_FILE).write_text(f"{type(e).__name__}: {e}"[:2000])
                continue
            (out / OUTPUT_FILE).write_text(text)

    # -- 3. trusted: the data and the outputs in, the score out
    def score(self, data_dir: Path, sample_id: str, output: Any) -> float | SampleResult:
        """One sample's score from its output (the parsed JSON value; treat it as hostile: check its type)."""
        raise NotImplementedError(f"{type(self).__name__}.score (or score_sample) must be implemented")

    def score_sample(self, data_dir: Path, sample_id: str, output: Any, folder: Path) -> SampleResult:
        """Score one sample; `folder` holds the files the pipeline wrote for it (regular files only, size-capped)."""
        got = self.score(data_dir, sample_id, output)
        return got if isinstance(got, SampleResult) else SampleResult(sample_id, float(got))

    def summarize(self, results: list[SampleResult]) -> EvalResult:
        """The score of the evaluation: the mean over samples, a failed one counting `failed_sample_score`."""
        if not results:
            raise RuntimeError("no sample to score")
        failed = [r for r in results if r.error is not None or not _finite(r.score)]
        if failed and self.failed_sample_score is None:
            first = failed[0]
            raise RuntimeError(f"sample {first.sample_id} failed: {first.error or 'no score'}")
        ok = [r.score for r in results if r.error is None and _finite(r.score)]
        scores = ok + [float(self.failed_sample_score or 0)] * len(failed)
        metrics: dict[str, float | int | str] = {"failed": len(failed)}
        if ok:
            metrics.update(worst=max(ok), best=min(ok))
        return EvalResult(score=sum(scores) / len(scores), metrics=metrics, sample_results=results)

    def evaluate(self, pipeline_dir: Path, data_dir: Path, sample_ids: list[str] | None = None) -> EvalResult:
        raise NotImplementedError(
            f"{type(self).__name__} is a SplitBackend: arl runs its parts in separate processes (arl eval)"
        )


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)
