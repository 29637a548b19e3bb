"""What the steps share: the run's settings, its stop rule, its transcript and cost bookkeeping."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from arl.errors import ArlError
from arl.lab import results, slots, state
from arl.lab.config import LabConfig
from arl.lab.context import open_lab
from arl.sandbox import containers

# Exit codes of the steps, shown by `arl-step --help` and used by the lab's Makefile.
OK, ERROR, GONE, TIMED_OUT = 0, 1, 3, 4
STOP, GO_ON = 0, 3


def open_run(lab: str | None) -> tuple[LabConfig, dict[str, Any]]:
    cfg = open_lab(lab)
    return cfg, state.require_run(cfg)


def data_dir(st: dict[str, Any]) -> Path:
    return Path(st["settings"]["data"])


def best(cfg: LabConfig) -> float | None:
    return results.best_of(cfg, results.read(cfg.results_file).rows)[0]


def stop_reason(cfg: LabConfig, st: dict[str, Any], rows: list[dict[str, Any]] | None = None) -> str | None:
    """The first stopping condition that holds, as a short reason, or None. A pure function of the state."""
    s = st["settings"]
    if st.get("stop_requested"):
        return f"stopped by request ({st['stop_requested']})"
    if st.get("fatal"):
        return str(st["fatal"])
    if s["max_iterations"] and st.get("iterations", 0) >= s["max_iterations"]:
        return f"max_iterations: {st['iterations']} experiments in this run"
    if s["max_hours"] and time.time() - st["started"] >= s["max_hours"] * 3600:
        return f"max_hours: {s['max_hours']:g} h elapsed"
    if s["max_cost"] and st.get("cost", 0.0) >= s["max_cost"]:
        return f"max_cost: ${st.get('cost', 0.0):.4f} spent (limit ${s['max_cost']:g})"
    restarts = max(slots.of(st, k).get("restarts", 0) for k in slots.numbers(st))
    if restarts > s["max_restarts"]:
        return f"max_restarts: {restarts} container failures in a row (limit {s['max_restarts']})"
    rows = results.read(cfg.results_file).rows if rows is None else rows
    target = s.get("target_score")
    b = results.best_of(cfg, rows)[0]
    if target is not None and b is not None and (b >= target if cfg.maximize else b <= target):
        return f"target_score: best {b:.6g} reached the target {target:g}"
    plateau = results.plateau(cfg, rows)
    if s["plateau_threshold"] and plateau >= s["plateau_threshold"]:
        return (
            f"plateau_threshold: {plateau} experiments in a row without beating the best "
            f"(to go on: --plateau-threshold {plateau + s['plateau_threshold']}, or 0 for no limit)"
        )
    return None


def stop_rule(cfg: LabConfig, st: dict[str, Any]) -> int:
    """STOP (and the reason printed, logged once, every slot frozen) when a stopping condition holds, else GO_ON.
    `should-stop` is this alone; `next` ends with it."""
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


def results_view(cfg: LabConfig) -> Path:
    return cfg.state_dir / "results-view.tsv"


def write_results_view(cfg: LabConfig) -> None:
    """The copy of the history the agent reads: holdout scores blanked. Written in place, because the
    container bind-mounts this very file (a rename would leave it looking at the old one)."""
    text = results.view_text(cfg.results_file)
    path = results_view(cfg)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def transcript_path(cfg: LabConfig, container: str) -> Path:
    return state.logs_dir(cfg) / f"{container}.jsonl"


def sync_transcript(cfg: LabConfig, st: dict[str, Any], slot: int = 0, live: bool = False) -> float:
    """The slot's container's cost so far, from its transcript under .arl/logs/ (written by the attached
    `docker run` as the agent streams); the live view prints the complete lines that are new."""
    sl = slots.of(st, slot)
    name = sl.get("container")
    if not name:
        return 0.0
    path = transcript_path(cfg, name)
    if live and path.exists():
        shown = sl.get("shown_bytes", 0)
        with open(path, "rb") as f:
            f.seek(shown)
            chunk = f.read()
        complete = chunk[: chunk.rfind(b"\n") + 1]
        if complete:
            _live_view(st, complete, slot)
            sl["shown_bytes"] = shown + len(complete)
    return container_cost(cfg, st, path, slot)


_ACCOUNTS: dict[Path, tuple[int, Any]] = {}  # transcript -> (bytes parsed, StreamAccount): parse only what is new


def container_cost(cfg: LabConfig, st: dict[str, Any], path: Path, slot: int = 0) -> float:
    """The agent's own count from its stream; with the API broker, the broker's count of this session when it is
    higher (an agent killed mid-turn never reported what its last calls cost)."""
    from arl.agents.base import StreamAccount
    from arl.agents.registry import get_adapter
    from arl.sandbox import brokerproc

    agent = st["settings"]["agent"]
    adapter = get_adapter(agent)
    done, acc = _ACCOUNTS.get(path, (0, StreamAccount()))
    if path.exists():
        with open(path, "rb") as f:
            f.seek(done)
            chunk = f.read()
        complete = chunk[: chunk.rfind(b"\n") + 1]  # a half-written last line waits for the next call
        for line in complete.decode(errors="replace").splitlines():
            adapter.parse_line(line, acc)
        _ACCOUNTS[path] = (done + len(complete), acc)
    own = float(adapter.cost(acc))
    # one broker serves every slot: its count is this session's only when no other slot runs beside it
    if agent in brokerproc.UPSTREAMS and brokerproc.mode(cfg, agent) == "broker" and slots.count(st) == 1:
        return max(own, brokerproc.session_cost(cfg, agent, float(slots.of(st, slot).get("launched_at") or 0.0)))
    return own


def readable(agent: str, lines: list[str]) -> list[str]:
    """The short view of a stream: what the agent says, which tool it runs with the first line of its input,
    its control characters escaped (these lines go to the user's terminal)."""
    from arl.agents.base import StreamAccount
    from arl.agents.registry import get_adapter
    from arl.util.text import clean

    adapter = get_adapter(agent)
    acc = StreamAccount()
    out = []
    for line in lines:
        for ev in adapter.parse_line(line, acc):
            text = ev.text.strip()
            if ev.kind in ("text", "tool_call", "retry", "final") and text:
                out.append(f"agent {ev.kind}: {clean(text.splitlines()[0][:300])}")
    return out


def _live_view(st: dict[str, Any], new: bytes, slot: int = 0) -> None:
    prefix = f"  [slot {slot}] " if slots.count(st) > 1 else "  "
    for line in readable(st["settings"]["agent"], new.decode(errors="replace").splitlines()):
        print(f"{prefix}{line}", flush=True)


def account_cost(cfg: LabConfig, st: dict[str, Any], slot: int = 0) -> float:
    """Bring the slot's and the run's cost up to date; return the slot's part not yet attributed to an experiment."""
    sl = slots.of(st, slot)
    current = sync_transcript(cfg, st, slot, live=True)
    sl["cost"] = sl.get("cost_closed", 0.0) + current  # its closed containers + the live one
    unattributed = sl["cost"] - sl.get("cost_attributed", 0.0)
    sl["cost_attributed"] = sl["cost"]
    st["cost"] = slots.total_cost(st)
    return max(unattributed, 0.0)


def close_container_cost(cfg: LabConfig, st: dict[str, Any], slot: int = 0) -> None:
    """The slot's container is going away (stopped first): its final cost joins the closed total, once. Its
    follower has written the last lines when it ends with the container."""
    sl = slots.of(st, slot)
    if sl.get("container") and not containers.follower_done(sl.get("follower"), 10.0):
        print(f"arl: the transcript of {sl['container']} may be missing its last lines", flush=True)
    current = sync_transcript(cfg, st, slot)
    sl["cost_closed"] = sl.get("cost_closed", 0.0) + current
    sl["cost"] = sl["cost_closed"]
    st["cost"] = slots.total_cost(st)


def parse_eval_json(out: str) -> dict[str, Any]:
    for line in reversed(out.strip().splitlines()):
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        if isinstance(obj, dict):
            return obj
    raise ArlError(f"no JSON from the evaluation: {out.strip()[-200:]!r}")
