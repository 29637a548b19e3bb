"""`arl-step verify`: the host evaluates the pipeline itself, in a fresh container, before trusting a keep."""

from __future__ import annotations

import argparse
import itertools
import os
import time
from pathlib import Path
from typing import Any

from arl.errors import ArlError
from arl.lab import slots
from arl.lab.config import LabConfig
from arl.sandbox import containers
from arl.sandbox.docker_run import container_name, verify_run
from arl.sandbox.workspace import discard_checkout, fresh_checkout, workspace
from arl.steps.common import OK, open_run, parse_eval_json
from arl.util import sh

_counter = itertools.count()


def host_evaluate(
    cfg: LabConfig, st: dict[str, Any], data: Path, repeats: int, tree: str, slot: int = 0
) -> dict[str, Any]:
    """Evaluate `tree`, checked out from git objects into a fresh host-owned folder, in a fresh network-less
    container that mounts it read-only: what is verified is what gets committed, by construction.

    Returns {"score", "scores", "spread", "metrics"} or {"error": "..."}; never raises for a failing backend."""
    pipeline = fresh_checkout(cfg, tree, "verify")
    try:
        return _evaluate(cfg, st, data, repeats, pipeline, slot)
    finally:
        discard_checkout(pipeline)


def _evaluate(
    cfg: LabConfig, st: dict[str, Any], data: Path, repeats: int, pipeline: Path, slot: int
) -> dict[str, Any]:
    image = st["image"]
    name = container_name(cfg, st["run"], os.getpid() * 1000 + next(_counter), role="verify")
    gpus = slots.gpu_for(cfg, slot)  # the GPU of the slot whose keep this is
    cmd = verify_run(cfg, image=image, name=name, run=st["run"], data=data, repeats=repeats, pipeline=pipeline,
                     gpus=gpus)  # fmt: skip
    # arl eval inside enforces eval_timeout per evaluation; this outer limit also covers container start-up.
    limit = cfg.eval_timeout * repeats + 60
    t0 = time.monotonic()
    try:
        code, out, err = sh.run(cmd, ok=None, timeout=limit)
    except ArlError as e:
        containers.stop(name, grace=1)
        return {"error": f"verification failed: {e}"}
    try:
        obj = parse_eval_json(out)
    except ArlError:
        tail = (err or out).strip().splitlines()
        return {"error": f"verification failed (exit {code}): {tail[-1] if tail else 'no output'}"}
    if "error" in obj or code != 0:
        return {"error": str(obj.get("error", f"verification exited {code}"))}
    scores = [float(s) for s in obj.get("scores", [obj["score"]])]
    return {
        "score": float(obj["score"]),
        "scores": scores,
        "spread": max(scores) - min(scores),
        "metrics": obj.get("metrics", {}),
        "seconds": time.monotonic() - t0,
    }


# Run in the sandbox's image, where the backend's own dependencies are: import the class and make one.
_CHECK = """import os, sys
from arl.lab.config import find_lab, load
from arl.evaluation.child import BackendProblem, load_backend_class
cfg = load(find_lab())
try:
    load_backend_class(cfg.backend_module, cfg.backend_class)()
except BackendProblem as e:
    sys.exit(f"{e}")
except Exception as e:
    sys.exit(f"{cfg.backend_class}() failed: {type(e).__name__}: {e}")
"""


def check_backend(cfg: LabConfig, st: dict[str, Any], tree: str) -> str | None:
    """Why the lab's backend cannot be imported and instantiated in the sandbox, or None when it can."""
    pipeline = fresh_checkout(cfg, tree, "check")
    name = container_name(cfg, st["run"], os.getpid() * 1000 + next(_counter), role="verify")
    try:
        cmd = verify_run(cfg, image=st["image"], name=name, run=st["run"], data=Path(st["settings"]["data"]),
                         repeats=1, pipeline=pipeline, command=["python3", "-c", _CHECK])  # fmt: skip
        code, out, err = sh.run(cmd, ok=None, timeout=cfg.eval_timeout + 60)
    except ArlError as e:
        containers.stop(name, grace=1)
        return str(e)
    finally:
        discard_checkout(pipeline)
    lines = (err or out).strip().splitlines()
    return None if code == 0 else (lines[-1] if lines else f"the backend check exited {code}")


def verify(lab: str | None, slot: int = 0) -> int:
    """Verify what the slot's workspace holds now (imported as data, as a keep would be)."""
    cfg, st = open_run(lab)
    imported = workspace(cfg, slot).import_tree()
    if not imported.ok:
        raise ArlError(f"the workspace cannot be imported: {imported.problems[0]}")
    res = host_evaluate(cfg, st, Path(st["settings"]["data"]), st["settings"]["repeats"], imported.tree, slot)
    if "error" in res:
        raise ArlError(res["error"])
    print(f"verified score: {res['score']:.6g} (spread {res['spread']:.3g} over {len(res['scores'])} runs)")
    return OK


def from_args(args: argparse.Namespace) -> int:
    return verify(args.lab, getattr(args, "slot", None) or 0)
