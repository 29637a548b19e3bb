"""`arl-step wait`: block until a verdict is ready (0), the container is gone (3) or the iteration timed out (4)."""

from __future__ import annotations

import argparse

from arl.loop.turn import wait


def from_args(args: argparse.Namespace) -> int:
    return wait(args.lab)
