"""`arl-step wait`: block until a verdict is ready (0), the container is gone (3) or the iteration timed out (4)."""

from __future__ import annotations

import argparse
import math
import time
from typing import Any

from .. import containers, service, state, verdicts
from ..config import LabConfig
from .common import GONE, OK, TIMED_OUT, open_run, sync_transcript

POLL = 0.02  # verdict detection latency; a directory listing is cheap
CHECK_CONTAINER = 0.5  # asking the engine is not
LIVE_VIEW = 2.0  # `docker logs` returns the whole stream so far: fetch it for the live view only now and then


def wait(lab: str | None) -> int:
    cfg, st = open_run(lab)
    control = state.control_dir(cfg)
    name = st.get("container") or ""
    limit = st["settings"]["iteration_timeout"]  # 0: no timeout (an agent may think as long as it needs)
    deadline = st.get("last_progress", time.time()) + limit if limit else math.inf
    next_check = next_view = 0.0
    st["phase"] = "waiting"
    state.save(cfg, st)
    while True:
        if verdicts.pending(control):
            st["detected_at"] = time.time()
            state.save(cfg, st)
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
            if now >= next_view:
                next_view = now + LIVE_VIEW
                sync_transcript(cfg, st, live=True)
            if cfg.host_service is not None and not service_healthy(cfg, st):
                return OK  # nothing to decide; should-stop reports why the run must end
        if time.time() >= deadline:
            print(f"no verdict within the iteration timeout ({st['settings']['iteration_timeout']:g} s)", flush=True)
            return TIMED_OUT
        time.sleep(POLL)


def service_healthy(cfg: LabConfig, st: dict[str, Any]) -> bool:
    """A host service that died is restarted once; a second death ends the run with the reason."""
    if service.running_pid(cfg) is not None:
        return True
    log = cfg.state_dir / "logs" / "service.log"
    if st.get("service_restarts", 0) >= 1:
        st["fatal"] = f"the host service died again after one restart; see {log}"
        state.save(cfg, st)
        print(st["fatal"], flush=True)
        return False
    print(f"the host service died; restarting it once (see {log})", flush=True)
    service.stop(cfg)
    service.up(cfg)
    st["service_restarts"] = st.get("service_restarts", 0) + 1
    state.save(cfg, st)
    return True


def from_args(args: argparse.Namespace) -> int:
    return wait(args.lab)
