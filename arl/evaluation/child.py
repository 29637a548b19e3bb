"""Runs a lab's backend in a child process, so a hung evaluation can be killed.

Entered by arl.evaluation.evaluate, never by people: in a forked child through run_forked, or in a fresh interpreter
(`[backend] isolation = "spawn"`) through main, with the request and response files as open descriptors."""

from __future__ import annotations

import atexit
import importlib.util
import json
import math
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any, Literal, TypedDict

from arl.evaluation.api import EvalBackend, EvalResult, SampleResult, SplitBackend

# What arl.evaluation.evaluate asks of the child (as JSON: "class" is no Python name, hence this form). `phase`:
# "evaluate" (a single-phase backend: everything in one process), or a SplitBackend's "prepare", "run", "score".
Request = TypedDict(
    "Request",
    {
        "module": str,
        "class": str,
        "phase": str,
        "pipeline": str,
        "data": str,
        "inputs": str,
        "outputs": str,
        "samples": "list[str] | None",
        "repeats": int,
        "max_output_bytes": int,
        # with "prepare": a single-phase backend evaluates `pipeline` at once (in that folder), in this process,
        # so `arl eval` starts one process for it, not two
        "then_evaluate": bool,
    },
)


class Success(TypedDict):
    ok: Literal[True]
    kind: Literal["scored"]
    score: float  # the mean over the repeats
    scores: list[float]
    metrics: dict[str, Any]
    sample_results: list[dict[str, Any]]
    seconds: float


class Prepared(TypedDict):
    ok: Literal[True]
    kind: Literal["split", "single"]  # single: the backend has only evaluate(); nothing was prepared
    samples: list[str]
    seconds: float


class Ran(TypedDict):
    ok: Literal[True]
    kind: Literal["ran"]
    seconds: float


class Failure(TypedDict):
    ok: Literal[False]
    error: str
    traceback: str  # the backend's, shown with --debug


Response = Success | Prepared | Ran | Failure  # the child's answer, as JSON


class _Terminated(BaseException):
    """Raised in the backend on SIGTERM; a BaseException so a backend's `except Exception` cannot swallow it."""


class BackendProblem(Exception):
    """A problem arl found with the backend (as opposed to an exception the backend raised)."""


def _on_term(signum: int, frame: Any) -> None:
    raise _Terminated("terminated: the evaluation ran past eval_timeout")


def load_backend_class(module_path: Path, class_name: str) -> type:
    if not module_path.is_file():
        raise BackendProblem(f"backend module {module_path} does not exist")
    # The backend may import modules that sit beside it.
    sys.path.insert(0, str(module_path.parent))
    spec = importlib.util.spec_from_file_location("arl_lab_backend", module_path)
    if spec is None or spec.loader is None:
        raise BackendProblem(f"cannot import {module_path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as e:
        raise BackendProblem(f"importing {module_path.name} failed: {type(e).__name__}: {e}")
    cls = getattr(module, class_name, None)
    if cls is None:
        raise BackendProblem(f"{module_path.name} has no class {class_name!r} ([backend] class in lab.toml)")
    if not isinstance(cls, type):
        raise BackendProblem(f"{module_path.name}: {class_name} is not a class")
    return cls


def clean(value: Any) -> Any:
    """JSON-safe copy: numpy scalars to Python, non-finite floats to strings."""
    if hasattr(value, "item") and not isinstance(value, (list, dict, str)):
        try:
            value = value.item()
        except Exception:
            value = str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {str(k): clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean(v) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def _py(value: Any) -> Any:
    """numpy scalars to plain Python numbers."""
    return value.item() if hasattr(value, "item") else value


def _check(result: Any, cls_name: str) -> dict[str, Any]:
    if not isinstance(result, EvalResult):
        raise BackendProblem(f"{cls_name}.evaluate returned {type(result).__name__}, not EvalResult")
    score = _py(result.score)
    if isinstance(score, bool) or not isinstance(score, (int, float)):
        raise BackendProblem(f"{cls_name}.evaluate returned a score of type {type(score).__name__}, not a number")
    if not math.isfinite(score):
        raise BackendProblem(f"{cls_name}.evaluate returned a non-finite score ({score})")
    if not isinstance(result.metrics, dict):
        raise BackendProblem(f"{cls_name}.evaluate returned metrics that are not a dict")
    samples = []
    for s in result.sample_results or []:
        if not isinstance(s, SampleResult):
            raise BackendProblem(f"{cls_name}.evaluate returned a sample result of type {type(s).__name__}")
        sc = _py(s.score)
        ok = isinstance(sc, (int, float)) and not isinstance(sc, bool) and math.isfinite(sc)
        samples.append(
            {
                "sample_id": str(s.sample_id),
                "score": float(sc) if ok else None,
                "error": s.error if ok else (s.error or f"non-finite or missing score ({sc!r})"),
                "extra": clean(s.extra or {}),
            }
        )
    return {"score": float(score), "metrics": clean(result.metrics), "sample_results": samples}


class _Phase:
    name = "loading"


def run(request: Request, phase: _Phase | None = None) -> Response:
    phase = phase or _Phase()
    cls = load_backend_class(Path(request["module"]), request["class"])
    name = request["class"]
    if request["phase"] == "prepare" and not issubclass(cls, SplitBackend):
        if not request.get("then_evaluate"):
            return Prepared(ok=True, kind="single", samples=[], seconds=0.0)  # nothing to prepare: no setup either
        # It was started in the host's scratch folder; a single-phase backend is made and runs in the pipeline's,
        # as its own process always did (the pipeline is first on no import path: sys.path has no "" here).
        os.chdir(request["pipeline"])
        request = {**request, "phase": "evaluate"}
    phase.name = f"{name}()"
    backend = cls()
    if not isinstance(backend, EvalBackend) and not hasattr(backend, "evaluate"):
        raise BackendProblem(f"{name} does not implement evaluate()")
    t0 = time.monotonic()
    # setup and teardown are paired: once setup() has been entered, teardown() runs, whatever happens
    # (a half-done setup is the teardown's to clean). A teardown error never hides the first failure.
    try:
        phase.name = f"{name}.setup()"
        backend.setup()
        response = _phase(backend, request, phase, t0)
    except BaseException:
        try:
            backend.teardown()
        except Exception:
            pass
        raise
    phase.name = f"{name}.teardown()"
    backend.teardown()
    return response


def _phase(backend: Any, request: Request, phase: _Phase, t0: float) -> Response:
    from arl.evaluation import phases

    name, what = request["class"], request["phase"]
    samples = request.get("samples") or None
    repeats = int(request.get("repeats", 1))
    data, inputs, outputs = Path(request["data"]), Path(request["inputs"]), Path(request["outputs"])
    if what == "prepare":
        phase.name = f"{name}.samples() / write_inputs()"
        ids = phases.prepare(backend, data, inputs, samples)
        return Prepared(ok=True, kind="split", samples=ids, seconds=time.monotonic() - t0)
    if what == "run":
        phase.name = f"{name}.run() (the pipeline)"
        phases.run(backend, Path(request["pipeline"]), inputs, outputs, repeats)
        return Ran(ok=True, kind="ran", seconds=time.monotonic() - t0)
    runs: list[dict[str, Any]] = []
    for k in range(repeats):
        if what == "score":
            phase.name = f"{name}.score()"
            out = phases.score(backend, data, outputs, k, samples, request["max_output_bytes"])
        else:
            phase.name = f"{name}.evaluate()"
            out = backend.evaluate(Path(request["pipeline"]), data, samples)
        runs.append(_check(out, name))
    scores = [r["score"] for r in runs]
    return Success(
        ok=True,
        kind="scored",
        score=sum(scores) / len(scores),
        scores=scores,
        metrics=runs[0]["metrics"],
        sample_results=runs[0]["sample_results"],
        seconds=time.monotonic() - t0,
    )


def answer(request: Request, out_fd: int) -> None:
    """Run the request and write the response to out_fd: any failure of user code is reported, not raised."""
    signal.signal(signal.SIGTERM, _on_term)
    phase = _Phase()
    try:
        response = run(request, phase)
    except BaseException as e:
        from arl.evaluation.phases import PhaseProblem

        if isinstance(e, (BackendProblem, _Terminated, PhaseProblem)):
            msg = str(e)
        else:
            where = "the backend" if phase.name == "loading" else phase.name
            msg = f"{where} raised {type(e).__name__}: {e}".rstrip(": ")
        import traceback  # only on failure: it costs a few milliseconds to import

        tb = traceback.format_exc()
        response: Response = Failure(ok=False, error=msg or type(e).__name__, traceback=tb)
    with os.fdopen(out_fd, "w", closefd=False) as f:
        f.write(json.dumps(response, allow_nan=False, default=str))


def run_forked(request: Request, cwd: Path, out_fd: int, to_stderr: bool) -> int:
    """The forked child: become what a spawned child would be (own session, stdin empty, stdout on stderr, in the
    pipeline folder, which must not shadow modules), answer, and return the exit code for os._exit."""
    os.setsid()
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(2 if to_stderr else null, 1)
    os.chdir(cwd)
    sys.path[:] = [p for p in sys.path if p not in ("", ".")]
    sys.dont_write_bytecode = True
    os.environ["PYTHONDONTWRITEBYTECODE"] = "1"
    # The parent's exit handlers (temporary folders among them) are not the child's to run; the backend's are.
    atexit._clear()
    answer(request, out_fd)
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    return 0


def main() -> int:
    with os.fdopen(int(sys.argv[1]), "rb") as f:
        request = json.loads(f.read())
    answer(request, int(sys.argv[2]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
