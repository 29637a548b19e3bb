"""A run as the loop's library sees it, one step of it as both loops run it (`make research`: an `arl-step NAME`
process per step; `arl run`: the same steps in one process), and when it stops.

The run: its lab and run state (`open_run`), the exit codes the steps share. A step's end and its failure are here,
once:

- its fault point, `after-NAME` (the crash tests kill arl there, under either loop);
- a step that fails ends the run with its error as the reason (`run N ended: error: ...`), a Ctrl-C with
  "interrupted": the teardown that follows (the Makefile's trap, or `arl run`'s) records it, whichever loop ran."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from arl.config.config import LabConfig
from arl.config.context import open_lab
from arl.engines.choose import engine_of
from arl.errors import ArlError
from arl.history import results
from arl.runstate import slots, state
from arl.runstate.runstate import RunState
from arl.util import faults

if TYPE_CHECKING:
    from arl.history.format import Row

# Exit codes of the steps, shown by `arl-step --help` and used by the lab's Makefile.
OK, ERROR, GONE, TIMED_OUT = 0, 1, 3, 4


STOP, GO_ON = 0, 3

INTERRUPTED = "interrupted (Ctrl-C or SIGTERM)"


def open_run(lab: str | None) -> tuple[LabConfig, RunState]:
    cfg = open_lab(lab)
    return cfg, state.require_run(cfg)


def data_dir(st: RunState) -> Path:
    return Path(st["settings"]["data"])


def owner() -> int:
    """The process a run belongs to: `arl run` itself, or in `make research` the recipe's shell, which runs every
    step and the teardown trap (ARL_RUN_PID when something else stands in between)."""
    return int(os.environ.get("ARL_RUN_PID") or os.getppid())


def run_step(name: str, lab: str | None, body: Callable[[], int], owner_pid: int) -> int:
    """Run one step; its exit code. `owner_pid`: the run's owner, whose run a failure here ends."""
    try:
        code = body()
    except KeyboardInterrupt:
        end_cause(lab, INTERRUPTED, owner_pid)
        raise
    except ArlError as e:
        end_cause(lab, f"error: {e}", owner_pid)
        raise
    except Exception as e:
        end_cause(lab, f"internal error: {type(e).__name__}: {e}", owner_pid)
        raise
    faults.point(f"after-{name}")
    return code


def end_cause(lab: str | None, reason: str, owner_pid: int) -> None:
    """Why the run ends, when no stopping condition said so first: kept for its teardown. Only a run `owner_pid`
    holds: a second `make research` refused at preflight must not end the first one's run."""
    try:
        cfg = open_lab(lab)
    except ArlError:
        return  # no lab: no run to end
    held = state.read_lock(cfg)
    if not held or held.get("pid") != owner_pid:
        return
    st = state.load(cfg)
    if st.get("active") and not st.get("stop_reason"):
        st["stop_reason"] = reason
        state.save(cfg, st)


# ---- when the run stops: the stopping conditions, checked after every experiment, one pure function of the state


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
