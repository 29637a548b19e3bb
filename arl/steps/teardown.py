"""`arl-step teardown`: stop the agent, keep what it wrote, stop the service, release the lock. Always runs."""

from __future__ import annotations

import argparse

from arl.lab import state
from arl.lab.context import open_lab
from arl.loop.repair import reconcile
from arl.loop.run import OK
from arl.sandbox import brokerproc, service


def teardown(lab: str | None, cause: str | None = None) -> int:
    """`cause`: why the run is ending when no stopping condition said so (an error in a step)."""
    cfg = open_lab(lab)
    st = state.load(cfg)
    if not st.get("active"):
        service.stop(cfg)
        brokerproc.stop(cfg)
        return OK
    # The same reconciliation as after a crash: a Ctrl-C in the middle of a decision loses and doubles nothing.
    reconcile(cfg, st, "[arl] the run stopped mid-experiment")
    service.stop(cfg)
    brokerproc.stop(cfg)
    reason = st.get("stop_reason") or cause or "interrupted (teardown before a stopping condition)"
    st.update(active=False, phase="stopped", stop_reason=reason)
    state.save(cfg, st)
    state.log_event(cfg, {"event": "end", "run": st.get("run"), "reason": reason, "cost": st.get("cost", 0.0)})
    state.release_lock(cfg)
    print(f"run {st.get('run')} ended: {reason}; cost ${st.get('cost', 0.0):.4f}", flush=True)
    return OK


def from_args(args: argparse.Namespace) -> int:
    return teardown(args.lab)
