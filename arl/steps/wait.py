"""`arl-step wait`: block until a verdict is ready (0), the container is gone (3) or the iteration timed out (4)."""

from __future__ import annotations

import argparse
import time

from .. import containers, state, verdicts
from .common import GONE, OK, TIMED_OUT, open_run, sync_transcript

POLL = 0.02  # verdict detection latency; a directory listing is cheap
CHECK_CONTAINER = 0.5  # asking the engine is not


def wait(lab: str | None) -> int:
    cfg, st = open_run(lab)
    control = state.control_dir(cfg)
    name = st.get("container") or ""
    deadline = st.get("last_progress", time.time()) + st["settings"]["iteration_timeout"]
    next_check = 0.0
    st["phase"] = "waiting"
    state.save(cfg, st)
    while True:
        if verdicts.pending(control):
            return OK
        now = time.monotonic()
        if now >= next_check:
            next_check = now + CHECK_CONTAINER
            if not containers.state(name).alive:
                # A verdict written just before the container died is still processed.
                if verdicts.pending(control):
                    return OK
                print(f"container {name} is gone", flush=True)
                return GONE
            sync_transcript(cfg, st, live=True)
        if time.time() >= deadline:
            print(f"no verdict within the iteration timeout ({st['settings']['iteration_timeout']:g} s)", flush=True)
            return TIMED_OUT
        time.sleep(POLL)


def from_args(args: argparse.Namespace) -> int:
    return wait(args.lab)
