"""A run's slots (`[run] agents = N`): each has its own agent container, workspace, control folder (its verdict
sequence and acks), notes file and transcript; the history, the branch, the budgets and the decider are shared.

The run state keeps what is per slot under `slots["<k>"]`; everything else in it is the run's. Slot 0's control
folder is `.arl/control` (as before slots existed), slot k's `.arl/control-<k>`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from arl.lab.config import LabConfig

# Per slot: its container and the bookkeeping of the session in it. Moved out of the run's top level of a state
# written by an arl without slots, so that a run it left is repaired by this one.
KEYS = (
    "container", "follower", "launched_at", "last_progress", "shown_bytes", "seq", "verdicts_since_launch",
    "idle_ends", "retry_at", "outage_attempts", "outage_since", "last_end", "detected_at", "restarts", "deciding",
    "cost_closed", "cost_attributed",
)  # fmt: skip


def count(st: dict[str, Any]) -> int:
    return max(int(st.get("settings", {}).get("agents") or 1), 1)


def numbers(st: dict[str, Any]) -> list[int]:
    return list(range(count(st)))


def of(st: dict[str, Any], slot: int) -> dict[str, Any]:
    """The slot's part of the run state (created empty; a state from before slots becomes slot 0's)."""
    table = st.setdefault("slots", {})
    if not table and any(k in st for k in KEYS):
        table["0"] = {k: st.pop(k) for k in KEYS if k in st}
    return table.setdefault(str(slot), {})


def control_dir(cfg: LabConfig, slot: int = 0) -> Path:
    return cfg.state_dir / ("control" if slot == 0 else f"control-{slot}")


def total_cost(st: dict[str, Any]) -> float:
    return sum(float(of(st, k).get("cost", 0.0)) for k in sorted({0, *map(int, st.get("slots", {}))}))


def gpu_for(cfg: LabConfig, slot: int) -> str:
    """`--gpus` for the slot's containers: its own device from `[sandbox] slot_gpus`, else `[sandbox] gpus`."""
    if cfg.slot_gpus:
        return f"device={cfg.slot_gpus[slot]}"
    return cfg.gpus
