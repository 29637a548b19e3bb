"""`arl-step teardown`: stop the agent, keep what it wrote, stop the service, release the lock. Always runs."""

from __future__ import annotations

import argparse

from .. import containers, experiments, gitops, service, state
from ..lab import open_lab
from .common import OK, close_container_cost


def teardown(lab: str | None) -> int:
    cfg = open_lab(lab)
    st = state.load(cfg)
    if not st.get("active"):
        service.stop(cfg)
        return OK
    name = st.get("container")
    if name:
        close_container_cost(cfg, st)
        containers.stop(name)
    for leftover in containers.ours(str(cfg.root)):
        containers.stop(leftover, grace=1)
    # Whatever the agent had half-written is an `interrupted` experiment: saved, never lost.
    if gitops.pipeline_dirty(cfg):
        cost = max(st.get("cost", 0.0) - st.get("cost_attributed", 0.0), 0.0)
        st["cost_attributed"] = st.get("cost", 0.0)
        row = experiments.record_failed(cfg, st, "interrupted", "[arl] the run stopped mid-experiment", cost=cost)
        experiments.progress(cfg, st, row)
    service.stop(cfg)
    reason = st.get("stop_reason") or "interrupted (teardown before a stopping condition)"
    st.update(active=False, phase="stopped", container=None, stop_reason=reason)
    state.save(cfg, st)
    state.log_event(cfg, {"event": "end", "run": st.get("run"), "reason": reason, "cost": st.get("cost", 0.0)})
    state.release_lock(cfg)
    print(f"run {st.get('run')} ended: {reason}; cost ${st.get('cost', 0.0):.4f}", flush=True)
    return OK


def from_args(args: argparse.Namespace) -> int:
    return teardown(args.lab)
