"""`arl-step baseline`: experiment 0, the unmodified pipeline evaluated by the host (once per lab)."""

from __future__ import annotations

import argparse

from arl.loop import by_hand, experiments
from arl.loop.run import OK, open_run


def baseline(lab: str | None) -> int:
    cfg, st = open_run(lab)
    row = by_hand.baseline(cfg, st)
    if row is not None:
        experiments.progress(cfg, st, row)
    return OK


def from_args(args: argparse.Namespace) -> int:
    return baseline(args.lab)
