"""`arl eval --phase prepare|run|score|evaluate`: one part of the evaluation, as the host's containers run it.

Each prints the evaluation process's answer as one JSON line (`{"error": ...}` and exit 1 on failure). prepare
reads --data and writes --inputs; run reads the pipeline and --inputs and writes --outputs, and never gets the data;
score reads --data and --outputs; evaluate is a single-phase backend's whole evaluation."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from arl.config.config import LabConfig
from arl.errors import UsageError
from arl.evaluation.evaluate import ask, phase_request

NEEDS = {
    "prepare": ("data", "inputs"),
    "run": ("inputs", "outputs"),
    "score": ("data", "outputs"),
    "evaluate": ("data",),
}


def one_phase(cfg: LabConfig, args: argparse.Namespace) -> int:
    phase: str = args.phase
    for key in NEEDS[phase]:
        if not getattr(args, key):
            raise UsageError(f"--phase {phase} needs --{key}")
    given = {key: Path(getattr(args, key)).resolve() for key in ("data", "inputs", "outputs") if key in NEEDS[phase]}
    pipeline = cfg.pipeline_dir.resolve() if phase in ("run", "evaluate") else None
    request = phase_request(cfg, phase, pipeline=pipeline, samples=args.sample or None, repeats=args.repeats, **given)
    cwd = pipeline or Path("/tmp")
    limit = cfg.eval_timeout * (args.repeats if phase in ("run", "evaluate") else 1)
    print(json.dumps(ask(cfg, request, cwd, limit), default=str), flush=True)
    return 0
