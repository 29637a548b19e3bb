"""Evaluate a pipeline with the lab's backend, in a child process under eval_timeout."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .config import LabConfig
from .errors import ArlError


class EvalFailed(ArlError):
    """The backend raised, returned garbage, or ran past eval_timeout."""


@dataclass
class Evaluation:
    score: float
    scores: list[float]
    metrics: dict[str, Any]
    sample_results: list[dict[str, Any]]
    seconds: float
    extra: dict[str, Any] = field(default_factory=dict)

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
    request = {
        "module": str(cfg.backend_module),
        "class": cfg.backend_class,
        "pipeline": str(pipeline),
        "data": str(data),
        "samples": samples or None,
        "repeats": repeats,
    }
    with tempfile.TemporaryDirectory(prefix="arl-eval-") as tmp:
        req, resp = Path(tmp) / "request.json", Path(tmp) / "response.json"
        req.write_text(json.dumps(request))
        t0 = time.monotonic()
        # Own session: on timeout the whole group goes, including anything the backend spawned.
        # The backend's prints go to stderr so that `arl eval --json` keeps stdout clean.
        proc = subprocess.Popen(
            [sys.executable, "-m", "arl.evalchild", str(req), str(resp)],
            stdout=sys.stderr.fileno() if _has_fileno(sys.stderr) else subprocess.DEVNULL,
            start_new_session=True,
            cwd=str(pipeline),
            env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
        )
        try:
            proc.wait(timeout=limit)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            raise EvalFailed(f"evaluation failed: ran past eval_timeout ({limit:g} s) and was killed")
        except BaseException:
            _kill_group(proc)
            raise
        try:
            out = json.loads(resp.read_text())
        except (OSError, ValueError):
            raise EvalFailed(
                f"evaluation failed: the evaluation process died (exit code {proc.returncode}) without a result"
            )
    if not out.get("ok"):
        raise EvalFailed(f"evaluation failed: {out.get('error', 'unknown error')}")
    return Evaluation(
        score=float(out["score"]),
        scores=[float(s) for s in out["scores"]],
        metrics=out["metrics"],
        sample_results=out["sample_results"],
        seconds=time.monotonic() - t0,
    )


def _has_fileno(stream: Any) -> bool:
    try:
        stream.fileno()
        return True
    except Exception:
        return False


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM lets the backend's teardown run; SIGKILL then takes whatever is left of the group."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=2.0)
    except subprocess.TimeoutExpired:
        pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()
