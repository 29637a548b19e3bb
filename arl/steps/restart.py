"""`arl-step restart`: the container died or timed out. Save its pipeline as a `crash`, restore, relaunch."""

from __future__ import annotations

import argparse
import time

from .. import containers, experiments, faults, state
from .common import OK, close_container_cost, open_run, stop_reason
from .launch import start_container


def restart(lab: str | None) -> int:
    cfg, st = open_run(lab)
    name = st.get("container") or ""
    cs = containers.state(name)
    if not cs.exists:
        why = "the container disappeared"
    elif cs.alive:
        why = f"no verdict within the iteration timeout ({st['settings']['iteration_timeout']:g} s)"
    elif cs.oom_killed:
        why = f"the container ran out of memory (limit {cfg.memory or 'none'})"
    else:
        tail = containers.stderr_tail(name, 3).replace("\n", " | ")
        why = f"the container exited with code {cs.exit_code}" + (f": {tail[-300:]}" if tail else "")
    cost_before = st.get("cost_attributed", 0.0)
    close_container_cost(cfg, st)
    containers.stop(name, grace=2)
    cost = max(st["cost"] - cost_before, 0.0)
    st["cost_attributed"] = st["cost"]
    tree, left_out = experiments.salvage(cfg)
    row = experiments.record_failed(cfg, st, "crash", f"[arl] {why}{left_out}", tree, cost=cost)
    faults.point("restart:after-record")
    experiments.progress(cfg, st, row)
    st.update(
        container=None,
        restarts=st.get("restarts", 0) + 1,
        iterations=st.get("iterations", 0) + 1,
        last_progress=time.time(),
    )
    state.save(cfg, st)
    if stop_reason(cfg, st) is None:
        start_container(cfg, st)
    return OK


def from_args(args: argparse.Namespace) -> int:
    return restart(args.lab)
