"""Which engine runs a lab's slots: `[engine] kind` of lab.toml (or `--engine`, kept in the run's settings)."""

from __future__ import annotations

from arl.config.config import LabConfig
from arl.config.engine import engine_kind
from arl.engines.base import Engine
from arl.runstate.runstate import RunState


def engine_of(cfg: LabConfig, st: RunState | None = None) -> Engine:
    """The run's engine (its settings hold `--engine` when one was given), else lab.toml's."""
    kind = engine_kind(cfg.engine, (st or {}).get("settings"))
    if kind == "slurm":
        from arl.engines.slurm import Slurm

        return Slurm(cfg)
    from arl.engines.local import Local

    return Local(cfg)
