"""A slot's agent's container ended or went silent. How it ended (`end_of`: from what the host saw, the agent's own
stream read through its adapter and the API broker's record of upstream failures) decides what happens:

- an API outage (its own retries ran out) is no experiment and spends no iteration: wait (30 s doubling to 10 min,
  with jitter, at least the API's Retry-After) and relaunch, until `max_api_outage_minutes` of failure;
- a clean end (it said it was done, or hit a turn limit) relaunches at once with a preamble on what happened so
  far; only sessions that end again and again without a verdict back off, and stop after `max_restarts`;
- anything else (a crash, the iteration timeout) saves what it left as a `crash`, restores, relaunches."""

from __future__ import annotations

import random
import time
from typing import Any

from arl.agents.base import StreamAccount, get_adapter
from arl.broker.process import usage_file
from arl.broker.usage import records
from arl.config.config import LabConfig
from arl.engines.choose import engine_of
from arl.loop import experiments
from arl.loop.costs import close_container_cost
from arl.loop.launching import start_container
from arl.loop.run import OK, open_run, stop_reason
from arl.report import events
from arl.runstate import slots, state
from arl.runstate.runstate import RunState, SlotState
from arl.util import faults


def restart(lab: str | None, slot: int | None = None) -> int:
    """The slot's container (default: the one `wait` found gone or silent) ended: record, then relaunch."""
    cfg, st = open_run(lab)
    ready = st.pop("ready", None) or {}
    if slot is None:
        slot = int(ready.get("slot", 0)) if ready.get("why") in ("gone", "timeout") else 0
    sl = slots.of(st, slot)
    name = sl.get("container") or ""
    engine = engine_of(cfg, st)
    cs = engine.state(name)
    timed_out = cs.exists and cs.alive
    if not cs.exists:
        why = "the container disappeared"
    elif timed_out:
        why = f"no verdict within the iteration timeout ({st['settings']['iteration_timeout']:g} s)"
    elif cs.oom_killed:
        why = f"the container ran out of memory (limit {cfg.memory or 'none'})"
    else:
        tail = engine.stderr_tail(name, 3).replace("\n", " | ")
        why = f"the container exited with code {cs.exit_code}" + (f": {tail[-300:]}" if tail else "")
    events.record(cfg, st, slot, "end")
    cost_before = sl.get("cost_attributed", 0.0)
    engine.remove(name, grace=2)  # first: its follower then writes the stream's last lines and ends
    close_container_cost(cfg, st, slot)
    if cs.ended_by and not timed_out:  # the scheduler's doing (time limit, preemption, scancel): no crash
        return _relaunch(cfg, st, slot, "scheduler", f"the scheduler ended its job: {cs.ended_by}")
    end = "crash" if timed_out or not cs.exists or cs.oom_killed else end_of(cfg, st, name, cs.exit_code, slot)
    if end in ("api_error", "done", "limit"):
        return _relaunch(cfg, st, slot, end, why)
    cost = max(sl.get("cost", 0.0) - cost_before, 0.0)
    sl["cost_attributed"] = sl.get("cost", 0.0)
    tree, left_out = experiments.salvage(cfg, slot)
    row = experiments.record_failed(
        cfg, st, "crash", experiments.Attempt(tree, f"[arl] {why}{left_out}", cost=cost, slot=slot)
    )
    faults.point("restart:after-record")
    experiments.progress(cfg, st, row)
    sl.pop("last_end", None)  # the next session starts a new attempt from the best tree, not where this one was
    sl.update(container=None, restarts=sl.get("restarts", 0) + 1, last_progress=time.time())
    st["iterations"] = st.get("iterations", 0) + 1
    state.save(cfg, st)
    if stop_reason(cfg, st) is None:
        start_container(cfg, st, slot, reseed=False)  # record_failed has just restored the workspace to the best
    return OK


def _relaunch(cfg: LabConfig, st: RunState, slot: int, end: str, why: str) -> int:
    """No experiment is recorded: the workspace stays as the agent left it, for the next session to go on."""
    now = time.time()
    sl = slots.of(st, slot)
    sl["container"] = None
    if end == "api_error":
        since = sl.setdefault("outage_since", now)
        attempts = sl["outage_attempts"] = sl.get("outage_attempts", 0) + 1
        limit = st["settings"].get("max_api_outage_minutes", 60) * 60
        if now - since >= limit:
            st["fatal"] = f"max_api_outage_minutes: the API has failed for {(now - since) / 60:.0f} min"
            state.save(cfg, st)
            return OK
        delay = min(30 * 2 ** (attempts - 1), 600) * random.uniform(0.8, 1.2)
        delay = min(max(delay, outage_retry_after(cfg, sl)), since + limit - now)
        events.record(cfg, st, slot, "api-wait")
        _wait(cfg, st, delay, f"the agent stopped on API errors ({why})")
    else:
        idle = not sl.get("verdicts_since_launch") and end != "scheduler"
        sl["idle_ends"] = sl.get("idle_ends", 0) + (1 if idle else 0)
        if sl["idle_ends"] > st["settings"]["max_restarts"]:
            st["fatal"] = (
                f"max_restarts: the agent's sessions ended {sl['idle_ends']} times in a row without a verdict "
                f"(last: {end}, {why})"
            )
            state.save(cfg, st)
            return OK
        if sl["idle_ends"] > 1:
            events.record(cfg, st, slot, "backoff")
            _wait(cfg, st, min(30 * 2 ** (sl["idle_ends"] - 2), 600), f"the agent's session ended ({end})")
    sl["last_end"] = f"{end}: {why}"
    sl["last_progress"] = time.time()
    state.save(cfg, st)
    if stop_reason(cfg, st) is None:
        said = f"; {why}" if end == "scheduler" else ""  # the job's end: whose doing, and which job
        print(f"relaunching the agent after its session ended ({end}){said}", flush=True)
        start_container(cfg, st, slot, reseed=False)
    return OK


def _wait(cfg: LabConfig, st: RunState, delay: float, what: str) -> None:
    """Sleep until the retry, in short steps: the stop rule (max_hours...) and a Ctrl-C still act meanwhile."""
    st["phase"] = "waiting for the API" if "API" in what else "backing off"
    st["retry_at"] = time.time() + delay
    state.save(cfg, st)
    m, s = divmod(int(delay), 60)
    print(f"{what}; waiting for the API (retry in {m}m {s}s)" if "API" in what else f"{what}; retry in {m}m {s}s")
    while time.time() < st["retry_at"] and stop_reason(cfg, st) is None:
        time.sleep(min(1.0, max(st["retry_at"] - time.time(), 0.0)))
    st.pop("retry_at", None)


def end_of(cfg: LabConfig, st: RunState, name: str, exit_code: int | None, slot: int = 0) -> str:
    """ "api_error", "done", "limit" or "crash"."""
    adapter = get_adapter(st["settings"]["agent"])
    acc = StreamAccount()
    try:
        with open(state.logs_dir(cfg) / f"{name}.jsonl", errors="replace") as f:
            for line in f:
                adapter.parse_line(line, acc)
    except OSError:
        pass
    end = adapter.end_class(acc, exit_code)
    since = st.get("slots", {}).get(str(slot), {}).get("launched_at", 0.0)
    if end in ("error", "killed") and _upstream_failures(cfg, since, slot):
        return "api_error"  # the agent gave up while the broker saw its API fail
    return end if end in ("api_error", "done", "limit") else "crash"


def outage_retry_after(cfg: LabConfig, session: SlotState) -> float:
    """The longest Retry-After the API sent during this session (a slot's state; seconds), 0 when none."""
    return max(
        (float(f.get("retry_after") or 0) for f in _upstream_failures(cfg, session.get("launched_at", 0.0))),
        default=0,
    )


def _upstream_failures(cfg: LabConfig, since: float, slot: int | None = None) -> list[dict[str, Any]]:
    """The broker's failure records since `since`: the slot's own (each slot has its socket), or every slot's."""

    def failed(rec: dict[str, Any]) -> bool:
        status = rec.get("status")
        return bool(rec.get("error")) or (isinstance(status, int) and (status == 429 or status >= 500))

    mine = [rec for when, rec in records(usage_file(cfg)) if when >= since and failed(rec)]
    return mine if slot is None else [rec for rec in mine if rec.get("slot", 0) == slot]
