"""`arl eval`: evaluate the pipeline and print the score (JSON for scripts)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from arl.commands.options import data_flag, json_flags, local_flag
from arl.config.config import LabConfig
from arl.config.context import in_sandbox, last_eval_path, open_lab
from arl.errors import ArlError, UsageError
from arl.evaluation.measure import measure


def eval_pipeline(
    cfg: LabConfig, data: Path, samples: list[str], as_json: bool, repeats: int = 1, local: bool = False
) -> int:
    if repeats < 1:
        raise UsageError(f"--repeats must be at least 1, not {repeats}")
    seen = None
    if in_sandbox():  # the workspace's modules only there: the host's `arl eval` starts without them
        from arl.sandbox.workspace import workspace_tree

        seen = workspace_tree(cfg)
    result = measure(cfg, data, samples, repeats, local)
    if seen is not None:
        from arl.util.fsutil import write_json

        # What `arl verdict` sends with the proposal: the agent's own claim, which the host re-checks; the tree
        # id is computed with the host's import rules, so the host can tell whether it imports what was evaluated.
        write_json(last_eval_path(), {**result.as_json(), "tree": seen[0], "tree_problem": seen[1]}, fsync=False)
    if as_json:
        print(json.dumps(result.as_json(), default=str))
    else:
        print(f"score: {result.score:.6g}   ({len(result.sample_results)} samples, {result.seconds:.2f} s)")
        for key, value in result.metrics.items():
            print(f"  {key}: {value}")
    return 0


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The command's options (arl.cli builds them only when this command runs)."""
    data_flag(p)
    p.add_argument(
        "--sample", action="append", default=[], help="evaluate only this sample id; repeatable (default: every sample)"
    )
    json_flags(p, "on when stdout is not a terminal")
    p.add_argument("--repeats", type=int, default=1, help="evaluations; the mean is the score (default: 1)")
    local_flag(p)
    p.add_argument(
        "--phase",
        choices=["prepare", "run", "score", "evaluate"],
        help="one part, as the host's containers run it, with --inputs/--outputs DIR (default: all)",
    )
    p.add_argument("--inputs", help="with --phase: the folder of the samples' inputs (default: none)")
    p.add_argument("--outputs", help="with --phase: the folder of the pipeline's outputs (default: none)")


def from_args(args: argparse.Namespace) -> int:
    as_json = bool(args.json) or not sys.stdout.isatty()
    try:
        if args.phase:
            from arl.commands.evalphase import one_phase

            return one_phase(open_lab(args.lab), args)
        return eval_pipeline(open_lab(args.lab), Path(args.data), args.sample, as_json, args.repeats, args.local)
    except ArlError as e:
        # Scripts read {"error": ...} on stdout; people read the one `arl: error:` line on stderr (the CLI's).
        if as_json:
            print(json.dumps({"error": str(e)}), flush=True)
        raise
