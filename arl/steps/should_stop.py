"""`arl-step should-stop`: 0 and the reason when a stopping condition holds, 3 when the run goes on."""

from __future__ import annotations

import argparse

from arl.loop.run import open_run, stop_rule


def should_stop(lab: str | None) -> int:
    cfg, st = open_run(lab)
    return stop_rule(cfg, st)


def from_args(args: argparse.Namespace) -> int:
    return should_stop(args.lab)
