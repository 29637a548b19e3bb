"""`arl-step verify`: the host evaluates what a slot's workspace holds now, in a fresh container, as it would a keep."""

from __future__ import annotations

import argparse

from arl.errors import ArlError
from arl.evaluation.verification import host_evaluate
from arl.loop.run import OK, data_dir, open_run
from arl.sandbox.workspace import workspace


def verify(lab: str | None, slot: int = 0) -> int:
    """Verify what the slot's workspace holds now (imported as data, as a keep would be)."""
    cfg, st = open_run(lab)
    imported = workspace(cfg, slot).import_tree()
    if not imported.ok:
        raise ArlError(f"the workspace cannot be imported: {imported.problems[0]}")
    v = host_evaluate(cfg, st, data_dir(st), st["settings"]["repeats"], imported.tree, slot)
    print(f"verified score: {v.score:.6g} (spread {v.spread:.3g} over {len(v.scores)} runs)")
    return OK


def from_args(args: argparse.Namespace) -> int:
    return verify(args.lab, getattr(args, "slot", None) or 0)
