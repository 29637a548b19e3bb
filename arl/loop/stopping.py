"""When the run stops: the stopping conditions, checked after every experiment, as one pure function of the state."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from arl.config.config import LabConfig
from arl.engines.choose import engine_of
from arl.history import results
from arl.loop.run import GO_ON, STOP
from arl.runstate import slots, state
from arl.runstate.runstate import RunState

if TYPE_CHECKING:
    from arl.history.format import Row


def stop_reason(cfg: LabConfig, st: RunState, rows: list[Row] | None = None) -> str | None:
    """The first stopping condition that holds, as a short reason, or None. A pure function of the state."""
    s = st["settings"]
    fatal = st.get("fatal")
    if fatal:
        return fatal
    # keeps being verified beside the decider are experiments already: the run's end records them
    counted = st.get("iterations", 0) + sum(1 for k in slots.numbers(st) if slots.of(st, k).get("verifying"))
    if s["max_iterations"] and counted >= s["max_iterations"]:
        return f"max_iterations: {_n(counted, 'experiment')} in this run"
    if s["max_hours"] and time.time() - st["started"] >= s["max_hours"] * 3600:
        return f"max_hours: {s['max_hours']:g} h elapsed"
    if s["max_cost"] and st.get("cost", 0.0) >= s["max_cost"]:
        return f"max_cost: ${st.get('cost', 0.0):.4f} spent (limit ${s['max_cost']:g})"
    restarts = max(slots.of(st, k).get("restarts", 0) for k in slots.numbers(st))
    if restarts > s["max_restarts"]:
        return f"max_restarts: {_n(restarts, 'container failure')} in a row (limit {s['max_restarts']})"
    if rows is None:  # the run state's summary of the history: no read of results.tsv
        h = state.history(cfg, st)
        b, plateau = h["best"], h["plateau"]
    else:
        b, plateau = results.best_of(cfg, rows)[0], results.plateau(cfg, rows)
    target = s.get("target_score")
    if target is not None and b is not None and (b >= target if cfg.maximize else b <= target):
        return f"target_score: best {b:.6g} reached the target {target:g}"
    if s["plateau_threshold"] and plateau >= s["plateau_threshold"]:
        return (
            f"plateau_threshold: {_n(plateau, 'experiment')} in a row without beating the best "
            f"(to go on: --plateau-threshold {plateau + s['plateau_threshold']}, or 0 for no limit)"
        )
    return None


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def failed(st: RunState) -> bool:
    """Did the run stop because things kept failing (containers, the API, the host service) rather than by a limit
    the user set? Then `arl run` and `make research` exit non-zero."""
    reason = st.get("stop_reason") or ""
    return reason.startswith("max_restarts:") or bool(reason and reason == st.get("fatal"))


def stop_rule(cfg: LabConfig, st: RunState) -> int:
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
    engine = engine_of(cfg, st)
    for k in slots.numbers(st):
        name = slots.of(st, k).get("container")
        if name and engine.state(name).status == "running":
            engine.freeze(name)
    return STOP
