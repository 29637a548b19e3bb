"""`arl-step teardown`: stop the agent, keep what it wrote, stop the service, release the lock. Always runs."""

from __future__ import annotations

import argparse

from arl.broker import process as brokerproc
from arl.config.config import LabConfig
from arl.config.context import open_lab
from arl.history import results
from arl.loop.repair import reconcile
from arl.loop.run import ERROR, OK, failed, owner
from arl.report import live
from arl.runstate import state
from arl.runstate.runstate import RunState
from arl.sandbox import service
from arl.util import sh


def teardown(lab: str | None, cause: str | None = None, owner_pid: int | None = None) -> int:
    """`cause`: why the run is ending when no stopping condition said so (an error in a step). `owner_pid`: the
    process this teardown speaks for; a run whose lock another live process holds is not its to end (a second
    `make research`, refused at preflight, runs its trap's teardown too)."""
    cfg = open_lab(lab)
    held = state.read_lock(cfg)
    holder = held.get("pid") if held else None
    if owner_pid is not None and holder not in (None, owner_pid) and state.pid_alive(holder):
        print(f"teardown: the run in this lab belongs to pid {holder}, still running; left as it is", flush=True)
        return OK
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
    live.refresh(cfg, active=False)  # the page stops reloading itself and shows the run's end
    print(f"run {st.get('run')} ended: {reason}; cost ${st.get('cost', 0.0):.4f}", flush=True)
    # a run stopped by failures is no success: `arl run` exits with this, the Makefile's trap passes it on
    crashed = all_crashed(cfg, st)  # said even when the run stopped by failures, as the likely reason
    return ERROR if failed(st) or crashed else OK


def all_crashed(cfg: LabConfig, st: RunState) -> bool:
    """Did every experiment of the run crash? Then something is broken (the backend, the image), not bad luck."""
    run = st.get("run")
    mine = [r["outcome"] for r in results.read(cfg.results_file).rows if r["run"] == run and r["outcome"] != "baseline"]
    if mine and all(o == "crash" for o in mine):
        sh.say(f"arl: all {len(mine)} experiments of run {run} crashed; `arl show ID` has each one's reason")
        return True
    return False


def from_args(args: argparse.Namespace) -> int:
    # the same owner as preflight's: in `make research`, the recipe's shell that runs every step and the trap
    return teardown(args.lab, owner_pid=owner())
