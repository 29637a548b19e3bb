"""`arl-step should-stop`: 0 and the reason when a stopping condition holds, 3 when the run goes on."""

from __future__ import annotations

import argparse

from .. import state
from .common import GO_ON, STOP, open_run, stop_reason


def should_stop(lab: str | None) -> int:
    cfg, st = open_run(lab)
    reason = stop_reason(cfg, st)
    if reason is None:
        return GO_ON
    if st.get("stop_reason") != reason:
        st["stop_reason"] = reason
        state.save(cfg, st)
        state.log_event(cfg, {"event": "stop", "run": st["run"], "reason": reason})
    print(f"stop: {reason}", flush=True)
    return STOP


def from_args(args: argparse.Namespace) -> int:
    return should_stop(args.lab)
