"""The run as the loop's library sees it: the lab and its run state, the exit codes the steps share."""

from __future__ import annotations

from pathlib import Path

from arl.config.config import LabConfig
from arl.config.context import open_lab
from arl.runstate import state
from arl.runstate.runstate import RunState

# Exit codes of the steps, shown by `arl-step --help` and used by the lab's Makefile.
OK, ERROR, GONE, TIMED_OUT = 0, 1, 3, 4


STOP, GO_ON = 0, 3


def open_run(lab: str | None) -> tuple[LabConfig, RunState]:
    cfg = open_lab(lab)
    return cfg, state.require_run(cfg)


def data_dir(st: RunState) -> Path:
    return Path(st["settings"]["data"])
