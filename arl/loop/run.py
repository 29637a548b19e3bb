"""A run as the loop's library sees it, and one step of it as both loops run it: `make research` (an `arl-step
NAME` process per step) and `arl run` (the same steps in one process).

The run: its lab and run state (`open_run`), the exit codes the steps share. A step's end and its failure are here,
once:

- its fault point, `after-NAME` (the crash tests kill arl there, under either loop);
- a step that fails ends the run with its error as the reason (`run N ended: error: ...`), a Ctrl-C with
  "interrupted": the teardown that follows (the Makefile's trap, or `arl run`'s) records it, whichever loop ran."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from arl.config.config import LabConfig
from arl.config.context import open_lab
from arl.errors import ArlError
from arl.runstate import state
from arl.runstate.runstate import RunState
from arl.util import faults

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
