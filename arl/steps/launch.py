"""`arl-step launch`: start the agent's container (idempotent: a running one is left alone)."""

from __future__ import annotations

import argparse

from arl.loop.launching import launch


def from_args(args: argparse.Namespace) -> int:
    return launch(args.lab, getattr(args, "slot", None))
