"""`arl-step should-stop`: 0 and the reason when a stopping condition holds, 3 when the run goes on."""

from __future__ import annotations

import argparse

from .. import containers, slots, state
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
    # Every slot is frozen now: none starts another verdict; teardown answers those already written.
    for k in slots.numbers(st):
        name = slots.of(st, k).get("container")
        if name and containers.state(name).status == "running":
            containers.pause(name)
    return STOP


def from_args(args: argparse.Namespace) -> int:
    return should_stop(args.lab)
