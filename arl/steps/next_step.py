"""`arl-step next`: one turn of the loop in one process: `wait`, then `decide` (a verdict) or `restart` (a container
gone or silent), then the stop rule. The lab's Makefile loops on it; the three steps still run one by one by hand.

In one process the verdict is decided the moment `wait` sees it, with no interpreter to start in between: that
start-up was most of a `make research` experiment's host time."""

from __future__ import annotations

import argparse

from arl.steps.common import OK, open_run, stop_rule
from arl.steps.decide import decide
from arl.steps.restart import restart
from arl.steps.wait import wait
from arl.util import faults


def next_turn(lab: str | None) -> int:
    """0 when the run should stop now (the reason printed), 3 when it goes on: as `should-stop`."""
    got_verdict = wait(lab) == OK
    faults.point("after-wait")
    if got_verdict:
        decide(lab)
        faults.point("after-decide")
    else:
        restart(lab)
        faults.point("after-restart")
    cfg, st = open_run(lab)
    return stop_rule(cfg, st)


def from_args(args: argparse.Namespace) -> int:
    return next_turn(args.lab)
