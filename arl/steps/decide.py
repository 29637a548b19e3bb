"""`arl-step decide`: answer the agent's verdict. Freeze the sandbox, check the claim, verify a keep on the
host, commit or revert, write the ack, thaw (or leave it frozen when the run is over)."""

from __future__ import annotations

import argparse

from arl.loop.decision import decide


def from_args(args: argparse.Namespace) -> int:
    return decide(args.lab, getattr(args, "slot", None))
