"""`arl-step commit` / `arl-step revert`: record the slot's workspace by hand, as a keep or a discard, exactly as an
agent's verdict would be (arl.loop.by_hand)."""

from __future__ import annotations

import argparse

from arl.loop import by_hand, experiments
from arl.loop.run import OK, open_run


def from_args(args: argparse.Namespace) -> int:
    cfg, st = open_run(args.lab)
    slot = getattr(args, "slot", 0) or 0
    if args.step == "commit":
        row = by_hand.keep(cfg, st, args.notes, slot, force=bool(getattr(args, "force", False)))
    else:
        row = by_hand.discard(cfg, st, args.notes, slot)
    if row is not None:
        experiments.progress(cfg, st, row)
    return OK
