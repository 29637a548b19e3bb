"""A run's slots (`[run] agents = N`): each has its own agent container, workspace, control folder (its verdict
sequence and acks), notes file and transcript; the history, the branch, the budgets and the decider are shared.

The run state keeps what is per slot under `slots["<k>"]`; everything else in it is the run's. Slot 0's control
folder is `.arl/control` (as before slots existed), slot k's `.arl/control-<k>`."""

from __future__ import annotations

from pathlib import Path

from arl.config.config import LabConfig
from arl.runstate.runstate import RunState, SlotState


def count(st: RunState) -> int:
    settings = st.get("settings")
    agents = settings.get("agents") if settings else None  # a state from before slots has none
    return max(int(agents or 1), 1)


def numbers(st: RunState) -> list[int]:
    return list(range(count(st)))


def of(st: RunState, slot: int) -> SlotState:
    """The slot's part of the run state (created when first asked for)."""
    sl = st.setdefault("slots", {}).setdefault(str(slot), SlotState(seq=0))
    sl.setdefault("seq", 0)
    return sl


def control_dir(cfg: LabConfig, slot: int = 0) -> Path:
    return cfg.state_dir / ("control" if slot == 0 else f"control-{slot}")


def total_cost(st: RunState) -> float:
    return sum(float(sl.get("cost", 0.0)) for sl in st.get("slots", {}).values())


def gpu_for(cfg: LabConfig, slot: int) -> str:
    """`--gpus` for the slot's containers: its own device from `[sandbox] slot_gpus`, else `[sandbox] gpus`."""
    if cfg.slot_gpus:
        return f"device={cfg.slot_gpus[slot]}"
    return cfg.gpus
