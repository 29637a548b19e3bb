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


class BackendTraceback(Exception):
    """The traceback of the backend's exception in the evaluation process (the cause of an EvalFailed)."""

    def __str__(self) -> str:
        return "the backend's traceback, in the evaluation process:\n" + str(self.args[0]).rstrip()


# The evaluation process runs in the pipeline folder, but that folder must not shadow modules (a pipeline
# with its own csv.py or json.py): `-c` puts the current folder first on sys.path, so it is dropped first.
_CHILD = (
    "import sys; sys.path[:1] = [] if sys.path[:1] == [''] else sys.path[:1]; "
    "from arl.evalchild import main; sys.exit(main())"
)


def one_line(text: str, limit: int = 400) -> str:
    """A message from user code, made fit for a one-line error."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


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
            [sys.executable, "-c", _CHILD, str(req), str(resp)],
            stdout=sys.stderr.fileno() if _has_fileno(sys.stderr) else subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            cwd=str(pipeline),
            env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
        )
        try:
            finished = _wait_unreaped(proc.pid, limit)
        except BaseException:
            _kill_group(proc)
            raise
        if not finished:
            _kill_group(proc)
            raise EvalFailed(f"evaluation failed: ran past eval_timeout ({limit:g} s) and was killed")
        # Whatever the backend started and left running dies with the evaluation. The leader is not reaped
        # yet, so its process group id cannot have been reused by an unrelated process.
        _signal_group(proc.pid, signal.SIGKILL)
        proc.wait()
        try:
            out = json.loads(resp.read_text())
        except (OSError, ValueError):
            raise EvalFailed(
                f"evaluation failed: the evaluation process died (exit code {proc.returncode}) without a result"
            )
    if not out.get("ok"):
        # One line for people; the backend's own traceback is the cause, shown with --debug.
        raise EvalFailed(f"evaluation failed: {one_line(str(out.get('error') or 'unknown error'))}") from (
            BackendTraceback(out["traceback"]) if out.get("traceback") else None
        )
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


def _wait_unreaped(pid: int, timeout: float) -> bool:
    """Wait for the process to exit, leaving it a zombie (so its pid and group id stay reserved)."""
    deadline = time.monotonic() + timeout
    delay = 0.001
    while True:
        if os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
            return True
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        time.sleep(min(delay, left))
        delay = min(delay * 2, 0.05)


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM lets the backend's teardown run; SIGKILL then takes whatever is left of the group."""
    _signal_group(proc.pid, signal.SIGTERM)
    try:
        _wait_unreaped(proc.pid, 2.0)
    finally:
        _signal_group(proc.pid, signal.SIGKILL)
        proc.wait()
