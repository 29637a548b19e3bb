"""`arl-step next`: one turn of the loop in one process: `wait`, then `decide` (a verdict) or `restart` (a container
gone or silent), then the stop rule. The lab's Makefile loops on it; the three steps still run one by one by hand."""

from __future__ import annotations

import argparse

from arl.loop.turn import next_turn


def from_args(args: argparse.Namespace) -> int:
    return next_turn(args.lab)
