"""Evaluate a pipeline with the lab's backend, each part in its own process under eval_timeout.

A SplitBackend runs as three processes: prepare (the data in, the inputs out), run (the pipeline on the inputs; no
data), score (the data and a host-made copy of the outputs; no pipeline). A single-phase backend (`evaluate` only)
runs in one process, as before, and the result says so (`split` is False): its scores can be forged."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from arl.config.config import LabConfig
from arl.errors import ArlError
from arl.evaluation.process import EvalFailed, run_child

if TYPE_CHECKING:
    from arl.evaluation.child import Request, Response

__all__ = ["EvalFailed", "Evaluation", "evaluate", "phase_request", "ask"]

SINGLE_PHASE_WARNING = (
    "the backend {cls} has only evaluate(): it runs the pipeline in the process that scores it, so a pipeline can "
    "forge its verified and holdout scores; split it (docs/backends.md)"
)


class BackendTraceback(Exception):
    """The traceback of the backend's exception in the evaluation process (the cause of an EvalFailed)."""

    def __str__(self) -> str:
        return "the backend's traceback, in the evaluation process:\n" + str(self.args[0]).rstrip()


def one_line(text: str, limit: int = 400) -> str:
    """A message from user code, made fit for a one-line error."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


class Evaluation(NamedTuple):  # not a dataclass: `arl eval` imports no dataclasses (see arl.config.config)
    score: float
    scores: list[float]
    metrics: dict[str, Any]
    sample_results: list[dict[str, Any]]
    seconds: float
    split: bool = True  # False: a single-phase backend scored the pipeline in its own process

    @property
    def spread(self) -> float:
        return max(self.scores) - min(self.scores) if self.scores else 0.0

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "score": self.score,
            "metrics": self.metrics,
            "samples": len(self.sample_results),
            "seconds": round(self.seconds, 4),
        }
        if len(self.scores) > 1:
            out["scores"] = self.scores
        return out


def evaluate(
    cfg: LabConfig,
    data_dir: Path,
    *,
    pipeline_dir: Path | None = None,
    samples: list[str] | None = None,
    repeats: int = 1,
    timeout: float | None = None,
) -> Evaluation:
    pipeline = (pipeline_dir or cfg.pipeline_dir).resolve()
    data = Path(data_dir).resolve()
    if not data.is_dir():
        raise ArlError(f"data folder {data_dir} does not exist (pass --data DIR)")
    if not pipeline.is_dir():
        raise ArlError(f"pipeline folder {pipeline} does not exist ([lab] pipeline_dir in {cfg.path})")
    if not cfg.backend_module.is_file():
        raise ArlError(f"backend module {cfg.backend_module} does not exist ([backend] module in {cfg.path})")
    limit = cfg.eval_timeout if timeout is None else timeout
    import tempfile

    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="arl-eval-") as tmp:
        work = Path(tmp)
        inputs, raw, outputs = work / "inputs", work / "raw", work / "outputs"
        base = phase_request(cfg, "prepare", data=data, inputs=inputs, samples=samples, repeats=repeats)
        # A single-phase backend answers this one with its score (then_evaluate): one process, not two.
        prepared = ask(cfg, {**base, "pipeline": str(pipeline), "then_evaluate": True}, work, limit)
        if prepared["kind"] == "scored":
            out = prepared
        else:
            raw.mkdir()
            ask(
                cfg, {**base, "phase": "run", "pipeline": str(pipeline), "outputs": str(raw)}, pipeline, limit * repeats
            )
            from arl.evaluation.outputs import copy_outputs

            copy_outputs(raw, outputs, max_output_bytes(cfg))
            out = ask(cfg, {**base, "phase": "score", "outputs": str(outputs)}, work, limit)
    return evaluation(out, time.monotonic() - t0, split=prepared["kind"] != "scored")


def max_output_bytes(cfg: LabConfig) -> int:
    return int(cfg.max_output_mb * 1024 * 1024)


def phase_request(
    cfg: LabConfig,
    phase: str,
    *,
    data: Path | None = None,
    pipeline: Path | None = None,
    inputs: Path | None = None,
    outputs: Path | None = None,
    samples: list[str] | None = None,
    repeats: int = 1,
) -> Request:
    return {
        "module": str(cfg.backend_module),
        "class": cfg.backend_class,
        "phase": phase,
        "pipeline": str(pipeline or ""),
        "data": str(data or ""),
        "inputs": str(inputs or ""),
        "outputs": str(outputs or ""),
        "samples": samples or None,
        "repeats": repeats,
        "max_output_bytes": max_output_bytes(cfg),
        "then_evaluate": False,
    }


def ask(cfg: LabConfig, request: Request, cwd: Path, limit: float) -> Any:
    """The child's answer to one phase; a failure raised as EvalFailed (the backend's traceback its cause)."""
    out: Response = run_child(request, cwd, limit, spawn=cfg.isolation == "spawn")
    if out["ok"] is False:
        # One line for people; the backend's own traceback is the cause, shown with --debug.
        raise EvalFailed(f"evaluation failed: {one_line(str(out['error'] or 'unknown error'))}") from (
            BackendTraceback(out["traceback"]) if out["traceback"] else None
        )
    return out


def evaluation(out: dict[str, Any], seconds: float, split: bool) -> Evaluation:
    """An Evaluation from a scored answer (the child's, or the JSON a verification container printed)."""
    if out.get("kind") != "scored" and "score" not in out:
        raise EvalFailed("evaluation failed: the evaluation process returned no score")
    return Evaluation(
        score=float(out["score"]),
        scores=[float(s) for s in out.get("scores") or [out["score"]]],
        metrics=dict(out.get("metrics") or {}),
        sample_results=list(out.get("sample_results") or []),
        seconds=seconds,
        split=split,
    )
