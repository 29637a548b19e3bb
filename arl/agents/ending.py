"""How an agent's session ended, from what the host saw: its own stream (through its adapter) and the API
broker's record of upstream failures. The loop treats an outage, a clean end and a crash differently."""

from __future__ import annotations

from typing import Any

from arl.agents.base import StreamAccount
from arl.config.config import LabConfig
from arl.runstate.runstate import RunState, SlotState


def end_of(cfg: LabConfig, st: RunState, name: str, exit_code: int | None, slot: int = 0) -> str:
    """ "api_error", "done", "limit" or "crash"."""
    from arl.agents.registry import get_adapter
    from arl.runstate import state

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
    from arl.broker.process import usage_file
    from arl.broker.usage import records

    def failed(rec: dict[str, Any]) -> bool:
        status = rec.get("status")
        return bool(rec.get("error")) or (isinstance(status, int) and (status == 429 or status >= 500))

    mine = [rec for when, rec in records(usage_file(cfg)) if when >= since and failed(rec)]
    return mine if slot is None else [rec for rec in mine if rec.get("slot", 0) == slot]
