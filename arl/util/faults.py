"""Fault injection for the reliability suite: `ARL_FAULT=NAME` kills arl with SIGKILL at the named point.

A point is a place in the loop where a crash must be survivable: every step boundary, and inside decide/commit
between each git operation. `ARL_FAULT=keep:after-row` dies the first time a keep's row has been written.
The next `arl run` must repair what was left. Unset, a point costs one dictionary lookup.
`ARL_FAULT_SIGNAL=INT` sends SIGINT instead (a Ctrl-C at that very point)."""

from __future__ import annotations

import os
import signal

POINTS = (
    "after-preflight",
    "after-image",
    "after-service-up",
    "after-baseline",
    "after-launch",
    "after-wait",
    "after-decide",
    "after-restart",
    "decide:after-pause",
    "decide:after-journal",
    "decide:after-verify",
    "decide:after-ack",
    "keep:after-snapshot",
    "keep:after-row",
    "keep:after-worktree",
    "keep:after-commit",
    "discard:after-snapshot",
    "discard:after-row",
    "discard:after-restore",
    "workspace:after-wipe",
    "restart:after-record",
)


def point(name: str) -> None:
    if os.environ.get("ARL_FAULT") == name:
        os.environ.pop("ARL_FAULT")
        # ARL_FAULT_SIGNAL=INT plays a Ctrl-C at the point instead: the run's own teardown must then reconcile.
        sig = getattr(signal, "SIG" + os.environ.get("ARL_FAULT_SIGNAL", "KILL"), signal.SIGKILL)
        os.kill(os.getpid(), sig)
