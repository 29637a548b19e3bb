"""`arl eval`: evaluate the pipeline and print the score (JSON for scripts)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from ..config import LabConfig
from ..evaluate import EvalFailed, evaluate
from ..fsutil import tree_hash, write_json
from ..lab import in_sandbox, open_lab
from ..service import host_service


def eval_pipeline(cfg: LabConfig, data: Path, samples: list[str], as_json: bool, repeats: int = 1) -> int:
    as_json = as_json or not sys.stdout.isatty()
    tree = tree_hash(cfg.pipeline_dir)
    try:
        with host_service(cfg):
            result = evaluate(cfg, data, samples=samples or None, repeats=repeats)
    except EvalFailed as e:
        if as_json:
            print(json.dumps({"error": str(e)}))
        else:
            print(f"arl: error: {e}", file=sys.stderr)
        return 1
    if in_sandbox():
        # What `arl verdict` sends with the proposal: the agent's own claim, which the host re-checks.
        last = Path(os.environ.get("ARL_STATE_HOME", "/tmp")) / "arl-last-eval.json"
        write_json(last, {**result.as_json(), "pipeline_hash": tree}, fsync=False)
    if as_json:
        print(json.dumps(result.as_json(), default=str))
    else:
        print(f"score: {result.score:.6g}   ({len(result.sample_results)} samples, {result.seconds:.2f} s)")
        for key, value in result.metrics.items():
            print(f"  {key}: {value}")
    return 0


def from_args(args: argparse.Namespace) -> int:
    return eval_pipeline(open_lab(args.lab), Path(args.data), args.sample, args.json, args.repeats)
