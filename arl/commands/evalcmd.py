"""`arl eval`: evaluate the pipeline and print the score (JSON for scripts)."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from contextlib import AbstractContextManager
from pathlib import Path

from arl.commands.options import data_flag, json_flags, local_flag
from arl.config.config import LabConfig
from arl.config.context import in_sandbox, last_eval_path, open_lab
from arl.errors import ArlError, UsageError
from arl.evaluation.evaluate import SINGLE_PHASE_WARNING, Evaluation, evaluate
from arl.util import sh


def service_around(cfg: LabConfig, data: Path | None = None) -> AbstractContextManager[None]:
    """The lab's host service around an evaluation of `data` (its ARL_DATA_DIR); most labs have none, and then
    its module is not imported."""
    if cfg.host_service is None:
        return contextlib.nullcontext()
    from arl.sandbox.service import host_service

    return host_service(cfg, data)


def measure(cfg: LabConfig, data: Path, samples: list[str], repeats: int, local: bool) -> Evaluation:
    """The pipeline's evaluation: in this machine's processes in the sandbox or with --local (and for a lab that has
    kept nothing an agent wrote), otherwise in the lab's sandbox image, the host's way, as verification does."""
    if in_sandbox() or local or not has_agent_keeps(cfg):
        with service_around(cfg, data):
            result = evaluate(cfg, data, samples=samples or None, repeats=repeats)
    else:
        from arl.evaluation import contained
        from arl.sandbox.images import ensure_lab_image

        sh.say("arl: the lab holds an agent's kept code: evaluating it in the sandbox image (--local: in this process)")
        box = contained.Box(cfg, ensure_lab_image(cfg, "command"), 0)
        with service_around(cfg, data):
            result = contained.evaluate(box, data, cfg.pipeline_dir, repeats, samples or None)
    if not result.split and not in_sandbox():
        sh.say("arl: warning: " + SINGLE_PHASE_WARNING.format(cls=cfg.backend_class))
    return result


def has_agent_keeps(cfg: LabConfig) -> bool:
    """Whether results.tsv records a keep: then the pipeline holds code an agent wrote."""
    try:
        data = cfg.results_file.read_bytes()
    except OSError:
        return False
    # a line whose fourth cell is `keep`, found by the C scans of bytes.find, not a split of every line
    pos = data.find(b"\tkeep")
    while pos >= 0:
        whole_cell = data[pos + 5 : pos + 6] in (b"\t", b"\n", b"\r", b"")
        if whole_cell and data.count(b"\t", data.rfind(b"\n", 0, pos) + 1, pos) == 2:
            return True
        pos = data.find(b"\tkeep", pos + 5)
    return False


def eval_pipeline(
    cfg: LabConfig, data: Path, samples: list[str], as_json: bool, repeats: int = 1, local: bool = False
) -> int:
    if repeats < 1:
        raise UsageError(f"--repeats must be at least 1, not {repeats}")
    seen = workspace_tree(cfg) if in_sandbox() else None
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


def workspace_tree(cfg: LabConfig) -> tuple[str, str]:
    """(tree id, "") of the workspace, or ("", why the host would refuse to import it)."""
    import os

    from arl.git.gittree import scan
    from arl.sandbox.workspace import limits

    found = scan(cfg.pipeline_dir, limits(cfg), algo=os.environ.get("ARL_OBJECT_FORMAT", "sha1"))
    return found.tree, (found.problems[0] if found.problems else "")


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
