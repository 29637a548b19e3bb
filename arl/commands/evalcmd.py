"""`arl eval`: evaluate the pipeline and print the score (JSON for scripts)."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from contextlib import AbstractContextManager
from pathlib import Path

from arl.errors import ArlError, UsageError
from arl.evaluation.evaluate import evaluate
from arl.lab.config import LabConfig
from arl.lab.context import in_sandbox, last_eval_path, open_lab


def service_around(cfg: LabConfig, data: Path | None = None) -> AbstractContextManager[None]:
    """The lab's host service around an evaluation of `data` (its ARL_DATA_DIR); most labs have none, and then
    its module is not imported."""
    if cfg.host_service is None:
        return contextlib.nullcontext()
    from arl.sandbox.service import host_service

    return host_service(cfg, data)


def eval_pipeline(cfg: LabConfig, data: Path, samples: list[str], as_json: bool, repeats: int = 1) -> int:
    if repeats < 1:
        raise UsageError(f"--repeats must be at least 1, not {repeats}")
    seen = workspace_tree(cfg) if in_sandbox() else None
    with service_around(cfg, data):
        result = evaluate(cfg, data, samples=samples or None, repeats=repeats)
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


def workspace_tree(cfg: LabConfig) -> tuple[str, str]:
    """(tree id, "") of the workspace, or ("", why the host would refuse to import it)."""
    import os

    from arl.lab.gittree import scan
    from arl.sandbox.workspace import limits

    found = scan(cfg.pipeline_dir, limits(cfg), algo=os.environ.get("ARL_OBJECT_FORMAT", "sha1"))
    return found.tree, (found.problems[0] if found.problems else "")


def from_args(args: argparse.Namespace) -> int:
    as_json = bool(args.json) or not sys.stdout.isatty()
    try:
        return eval_pipeline(open_lab(args.lab), Path(args.data), args.sample, as_json, args.repeats)
    except ArlError as e:
        # Scripts read {"error": ...} on stdout; people read the one `arl: error:` line on stderr (the CLI's).
        if as_json:
            print(json.dumps({"error": str(e)}), flush=True)
        raise
