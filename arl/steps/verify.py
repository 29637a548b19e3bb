"""`arl-step verify`: the host evaluates the pipeline itself, in a fresh container, before trusting a keep."""

from __future__ import annotations

import argparse
import itertools
import os
import time
from pathlib import Path
from typing import Any

from .. import containers, sh
from ..config import LabConfig
from ..errors import ArlError
from ..sandbox import container_name, verify_run
from .common import OK, open_run, parse_eval_json

_counter = itertools.count()


def host_evaluate(cfg: LabConfig, st: dict[str, Any], data: Path, repeats: int = 1) -> dict[str, Any]:
    """Evaluate in a fresh, network-less container with the pipeline read-only.

    Returns {"score", "scores", "spread", "metrics"} or {"error": "..."}; never raises for a failing backend."""
    image = st["image"]
    name = container_name(cfg, st["run"], os.getpid() * 1000 + next(_counter), role="verify")
    cmd = verify_run(cfg, image=image, name=name, run=st["run"], data=data, repeats=repeats)
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


def verify(lab: str | None) -> int:
    cfg, st = open_run(lab)
    res = host_evaluate(cfg, st, Path(st["settings"]["data"]), st["settings"]["repeats"])
    if "error" in res:
        raise ArlError(res["error"])
    print(f"verified score: {res['score']:.6g} (spread {res['spread']:.3g} over {len(res['scores'])} runs)")
    return OK


def from_args(args: argparse.Namespace) -> int:
    return verify(args.lab)
