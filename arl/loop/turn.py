"""One turn of the loop: wait for the next thing to decide (a slot's verdict, the oldest first; a container gone; an
agent silent past the iteration timeout; a host service that died), then `decide` (a verdict) or `restart` (a
container gone or silent), then the stop rule. `arl-step next` and `arl run` both loop on `next_turn`; `arl-step
wait` is its first part alone.

In one process the verdict is decided the moment `wait` sees it, with no interpreter to start in between: that
start-up was most of a `make research` experiment's host time."""

from __future__ import annotations

import math
import os
import time

from arl.channel import verdicts
from arl.config.config import LabConfig
from arl.engines.choose import engine_of
from arl.loop import diskguard, verifying
from arl.loop.costs import budget_spent, freeze_all, sync_transcript
from arl.loop.decision import decide
from arl.loop.restarting import restart
from arl.loop.run import GONE, OK, TIMED_OUT, open_run, stop_rule
from arl.runstate import slots, state
from arl.runstate.runstate import RunState
from arl.sandbox import service
from arl.sandbox.containers import State
from arl.util import faults

POLL = 0.005  # verdict detection latency (half of it on average); a directory listing costs microseconds


CHECK_CONTAINER = 0.5  # asking the engine is not


LIVE_VIEW = 2.0  # `docker logs` returns the whole stream so far: fetch it for the live view only now and then


def next_turn(lab: str | None) -> int:
    """0 when the run should stop now (the reason printed), 3 when it goes on: as `should-stop`."""
    got_verdict = wait(lab) == OK
    faults.point("after-wait")
    if got_verdict:
        decide(lab)
        faults.point("after-decide")
    else:
        restart(lab)
        faults.point("after-restart")
    cfg, st = open_run(lab)
    return stop_rule(cfg, st)


def wait(lab: str | None) -> int:
    """Until some slot has a verdict (the oldest first), or a slot's container is gone or silent past the
    iteration timeout. Which slot, and why, is kept in the state for `decide` / `restart` (and printed)."""
    cfg, st = open_run(lab)
    limit = st["settings"]["iteration_timeout"]  # 0: no timeout (an agent may think as long as it needs)
    next_check = next_view = 0.0
    engine = engine_of(cfg, st)
    st["phase"] = "waiting"
    state.save(cfg, st)
    while True:
        ready = _oldest_verdict(cfg, st)
        if ready is not None:
            return _ready(cfg, st, ready, "verdict", OK)
        verified = verifying.done(cfg, st) if verifying.running(st) else None
        if verified is not None:
            return _ready(cfg, st, verified, "verified", OK)
        now = time.monotonic()
        if now >= next_check:
            next_check = now + CHECK_CONTAINER
            if st["settings"].get("max_cost") and _budget_spent(cfg, st):
                return OK  # nothing to decide; the stop rule ends the run with the reason
            for k in slots.numbers(st):
                name = slots.of(st, k).get("container") or ""
                cs = engine.state(name)
                if cs.status == "queued" or slots.of(st, k).get("queued"):
                    _queue_time(cfg, st, k, cs)
                if not cs.alive:
                    if verdicts.pending(slots.control_dir(cfg, k)):
                        return _ready(cfg, st, k, "verdict", OK)  # written just before the container died
                    print(f"container {name} is gone{_which(st, k)}", flush=True)
                    return _ready(cfg, st, k, "gone", GONE)
            if now >= next_view:
                next_view = now + LIVE_VIEW
                for k in slots.numbers(st):
                    sync_transcript(cfg, st, k, live=True)
            if cfg.host_service is not None and not service_healthy(cfg, st):
                return OK  # nothing to decide; should-stop reports why the run must end
            if diskguard.check(cfg, st):
                return OK  # a slot past its disk limits was stopped and recorded as a crash
        for k in slots.numbers(st):
            if slots.of(st, k).get("verifying"):
                continue  # frozen while the host verifies: its agent's time does not run
            deadline = slots.of(st, k).get("last_progress", time.time()) + limit if limit else math.inf
            if time.time() >= deadline:
                print(f"no verdict within the iteration timeout ({limit:g} s){_which(st, k)}", flush=True)
                return _ready(cfg, st, k, "timeout", TIMED_OUT)
        time.sleep(POLL)


def _oldest_verdict(cfg: LabConfig, st: RunState) -> int | None:
    """The slot whose pending verdict arrived first (decisions go in arrival order)."""
    best: tuple[float, int] | None = None
    for k in slots.numbers(st):
        if slots.of(st, k).get("verifying"):
            continue  # its verdict waits for its verification, not for a decision
        for path in verdicts.pending(slots.control_dir(cfg, k)):
            try:
                landed = os.lstat(path).st_mtime
            except OSError:
                continue
            if best is None or (landed, k) < best:
                best = (landed, k)
    return None if best is None else best[1]


def _queue_time(cfg: LabConfig, st: RunState, slot: int, cs: State) -> None:
    """A job waiting in the scheduler's queue: its time counts against no iteration timeout (the clock starts
    when it runs), and `arl status` shows why it waits."""
    sl = slots.of(st, slot)
    if cs.status == "queued":
        if sl.get("queued") != cs.reason:
            print(f"queued ({cs.reason}){_which(st, slot)}", flush=True)
        sl.update(queued=cs.reason, last_progress=time.time(), launched_at=time.time())
    else:
        sl.pop("queued", None)
        sl["last_progress"] = sl["launched_at"] = time.time()
        print(f"{sl.get('container')} is running{_which(st, slot)}", flush=True)
    state.save(cfg, st)


def _ready(cfg: LabConfig, st: RunState, slot: int, why: str, code: int) -> int:
    st["ready"] = {"slot": slot, "why": why}
    if why == "verdict":
        slots.of(st, slot)["detected_at"] = time.time()
    state.save(cfg, st)
    return code


def _which(st: RunState, slot: int) -> str:
    return f" (slot {slot})" if slots.count(st) > 1 else ""


def _budget_spent(cfg: LabConfig, st: RunState) -> bool:
    """The run's cost has reached max_cost (or the broker has begun refusing calls past it): every slot is frozen
    at once, so nothing more is spent while the run ends (the stop rule sees the cost; a limit the user set, not a
    failure)."""
    reason = budget_spent(cfg, st)
    if reason is None:
        return False
    freeze_all(cfg, st)
    state.save(cfg, st)
    print(f"{reason}: every agent is frozen", flush=True)
    return True


def service_healthy(cfg: LabConfig, st: RunState) -> bool:
    """A host service, or the forwarder that lets the sandbox reach it, that died is restarted once; a second
    death ends the run with the reason."""
    forwarder = "host service's forwarder to the sandbox"
    dead = "host service" if service.running_pid(cfg) is None else "" if service.forwarder_alive(cfg) else forwarder
    if not dead:
        return True
    log = cfg.state_dir / "logs" / ("forward.log" if dead == forwarder else "service.log")
    if st.get("service_restarts", 0) >= 1:
        st["fatal"] = f"the {dead} died again after one restart; see {log}"
        state.save(cfg, st)
        print(st["fatal"], flush=True)
        return False
    print(f"the {dead} died; restarting it once (see {log})", flush=True)
    if dead == forwarder:
        service.restart_forwarder(cfg)
    else:
        service.stop(cfg)
        service.up(cfg)
    st["service_restarts"] = st.get("service_restarts", 0) + 1
    state.save(cfg, st)
    return True
