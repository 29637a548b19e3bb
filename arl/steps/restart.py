"""`arl-step restart`: the agent's container ended or went silent: record the attempt (a crash) or wait out an API
outage, then relaunch. How it ended decides which (see arl.loop.restarting)."""

from __future__ import annotations

import argparse

from arl.loop.restarting import restart


def from_args(args: argparse.Namespace) -> int:
    return restart(args.lab, getattr(args, "slot", None))
