"""What the agents cost, from their transcripts under .arl/logs/ (and the API broker's count), and the live view of
what they say."""

from __future__ import annotations

import contextlib
import copy
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from arl.config.config import LabConfig
from arl.report.transcript import readable
from arl.runstate import slots, state
from arl.runstate.runstate import RunState
from arl.sandbox import containers
from arl.util.fsutil import appended_lines


def transcript_path(cfg: LabConfig, container: str) -> Path:
    return state.logs_dir(cfg) / f"{container}.jsonl"


def sync_transcript(cfg: LabConfig, st: RunState, slot: int = 0, live: bool = False) -> float:
    """The slot's container's cost so far, from its transcript under .arl/logs/ (written by the attached
    `docker run` as the agent streams); the live view prints the complete lines that are new."""
    sl = slots.of(st, slot)
    name = sl.get("container")
    if not name:
        return 0.0
    path = transcript_path(cfg, name)
    if live:
        shown = sl.get("shown_bytes", 0)
        new = appended_lines(path, shown)
        if new:
            _live_view(st, new, slot)
            sl["shown_bytes"] = shown + len(new)
    return container_cost(cfg, st, path, slot)


_ACCOUNTS: dict[Path, tuple[int, Any]] = {}  # transcript -> (bytes parsed, StreamAccount): parse only what is new
_COUNTING = threading.RLock()  # the incremental readers (transcripts, the broker's log): one reader at a time


def container_cost(cfg: LabConfig, st: RunState, path: Path, slot: int = 0) -> float:
    """The agent's own count from its stream; with the API broker, the broker's count of this session when it is
    higher (an agent killed mid-turn never reported what its last calls cost)."""
    from arl.agents.base import StreamAccount, get_adapter
    from arl.broker import process as brokerproc

    agent = st["settings"]["agent"]
    adapter = get_adapter(agent)
    with _COUNTING:
        done, acc = _ACCOUNTS.get(path, (0, StreamAccount()))
        new = appended_lines(path, done)
        for line in new.decode(errors="replace").splitlines():
            adapter.parse_line(line, acc)
        _ACCOUNTS[path] = (done + len(new), acc)
        own = float(adapter.cost(acc))
        if agent in brokerproc.UPSTREAMS and brokerproc.mode(cfg, agent) == "broker":  # each slot has its own socket
            return max(own, broker_cost(cfg, agent, float(slots.of(st, slot).get("launched_at") or 0.0), slot))
    return own


def broker_cost(cfg: LabConfig, agent: str, since: float, slot: int = 0) -> float:
    """USD of every answer the broker relayed to the slot since `since` (epoch seconds), priced for the agent's
    provider. The broker's count needs no word from the agent: it holds for a process killed mid-turn (codex reports
    its tokens only when a turn ends, a killed Claude never prints its total), and for calls an agent makes to the
    broker itself (curl from its shell), which its own count never sees."""
    from arl.agents.pricing import claude_cost, openai_cost
    from arl.broker import process as brokerproc
    from arl.broker.usage import records

    price = openai_cost if brokerproc.UPSTREAMS[agent][0] == "openai" else claude_cost
    with _COUNTING:
        used = records(brokerproc.usage_file(cfg))
    return sum(price(str(r.get("model") or ""), r) for when, r in used if when >= since and r.get("slot", 0) == slot)


def budget_spent(cfg: LabConfig, st: RunState) -> str | None:
    """Why the run must stop now for its budget, or None: the broker has refused calls past `max_cost` (it counts
    every call as it ends), or the slots' costs, brought up to date, have reached it."""
    from arl.broker import process as brokerproc

    limit = st["settings"].get("max_cost") or 0.0
    if not limit:
        return None
    try:
        spent = float(json.loads(brokerproc.spent_file(cfg).read_text())["spent"])
    except (OSError, ValueError, KeyError, TypeError):
        spent = 0.0
    for k in slots.numbers(st):
        sl = slots.of(st, k)
        sl["cost"] = sl.get("cost_closed", 0.0) + sync_transcript(cfg, st, k)
    st["cost"] = max(slots.total_cost(st), spent)
    return f"max_cost: ${st['cost']:.4f} spent (limit ${limit:g})" if st["cost"] >= limit else None


GUARD_CHECK = 0.5  # seconds between the budget checks while a decision runs (as often as the waiting loop checks)


def freeze_all(cfg: LabConfig, st: RunState) -> list[str]:
    """Freeze every slot's running agent for the budget, wherever its engine runs it (each a `budget` interval of
    the report's timeline); the names frozen."""
    from arl.engines.choose import engine_of
    from arl.report import events

    engine = engine_of(cfg, st)
    frozen = []
    for k in slots.numbers(st):
        name = slots.of(st, k).get("container")
        if name and engine.state(name).status == "running" and engine.freeze(name):
            frozen.append(name)
            events.record(cfg, st, k, "budget")
    return frozen


@contextlib.contextmanager
def budget_guard(cfg: LabConfig, st: RunState, during: str) -> Iterator[None]:
    """While the host decides (`during` says what), the other slots' agents go on working: a thread checks the
    budget as the waiting loop does and freezes every agent the moment it is spent (the broker already refuses past
    it; a frozen agent stops asking, and one without the broker stops spending). It works on a copy of the run state
    taken here, so the decider's own state is never written from two threads; once done, a spent budget is brought
    into that state, so the stop rule sees it and the decided slot stays frozen."""
    if not st["settings"].get("max_cost"):
        yield
        return
    seen = copy.deepcopy(st)
    done = threading.Event()
    tripped: list[str] = []

    def watch() -> None:
        while True:
            reason = budget_spent(cfg, seen)
            if reason is not None:
                frozen = freeze_all(cfg, seen)
                print(f"{reason}: every agent is frozen (during {during})", flush=True)
                state.log_event(cfg, {"event": "budget_frozen", "run": seen.get("run"), "containers": frozen})
                tripped.append(reason)
                return
            if done.wait(GUARD_CHECK):
                return

    watcher = threading.Thread(target=watch, name="budget-guard", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        done.set()
        watcher.join()
        if tripped:
            budget_spent(cfg, st)


def _live_view(st: RunState, new: bytes, slot: int = 0) -> None:
    prefix = f"  [slot {slot}] " if slots.count(st) > 1 else "  "
    for line in readable(st["settings"]["agent"], new.decode(errors="replace").splitlines()):
        print(f"{prefix}{line}", flush=True)


def account_cost(cfg: LabConfig, st: RunState, slot: int = 0) -> float:
    """Bring the slot's and the run's cost up to date; return the slot's part not yet attributed to an experiment."""
    sl = slots.of(st, slot)
    current = sync_transcript(cfg, st, slot, live=True)
    sl["cost"] = sl.get("cost_closed", 0.0) + current  # its closed containers + the live one
    unattributed = sl["cost"] - sl.get("cost_attributed", 0.0)
    sl["cost_attributed"] = sl["cost"]
    st["cost"] = slots.total_cost(st)
    return max(unattributed, 0.0)


def close_container_cost(cfg: LabConfig, st: RunState, slot: int = 0) -> None:
    """The slot's container is going away (stopped first): its final cost joins the closed total, once. Its
    follower has written the last lines when it ends with the container."""
    sl = slots.of(st, slot)
    name = sl.get("container")
    if name and not containers.follower_done(sl.get("follower"), 10.0):
        print(f"arl: the transcript of {name} may be missing its last lines", flush=True)
    current = sync_transcript(cfg, st, slot)
    sl["cost"] = sl["cost_closed"] = sl.get("cost_closed", 0.0) + current
    st["cost"] = slots.total_cost(st)
