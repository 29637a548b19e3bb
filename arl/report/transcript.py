"""The agent's transcript of one experiment: the part of its container's log between the experiment before it (in
the same container) and its own verdict, as the short readable view (`arl show`, the report, the live view)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, TypedDict, cast

from arl.runstate import state

if TYPE_CHECKING:
    from arl.config.config import LabConfig


class Mark(TypedDict, total=False):
    """An `experiment` event of runs.jsonl: where the experiment's part of its container's log ends."""

    id: int
    run: int
    container: str | None
    log_bytes: int


def readable(agent: str, lines: list[str]) -> list[str]:
    """The short view of a stream: what the agent says, which tool it runs with the first line of its input,
    its control characters escaped (these lines go to the user's terminal)."""
    from arl.agents.base import StreamAccount, get_adapter
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


def events(cfg: LabConfig, kinds: tuple[str, ...]) -> list[dict]:
    """The events of .arl/runs.jsonl of these kinds, in order (a damaged line is skipped)."""
    path = cfg.state_dir / "runs.jsonl"
    out: list[dict] = []
    if not path.exists():
        return out
    wanted = tuple(f'"event": "{k}"' for k in kinds)
    for line in path.read_text(errors="replace").splitlines():
        if not any(w in line for w in wanted):  # most lines are timings: not parsed at all
            continue
        try:
            e = json.loads(line)
        except ValueError:
            continue
        if isinstance(e, dict) and e.get("event") in kinds:
            out.append(e)
    return out


def marks(cfg: LabConfig) -> list[Mark]:
    return [cast(Mark, e) for e in events(cfg, ("experiment",))]


def excerpt(cfg: LabConfig, exp_id: int, agent: str, all_marks: list[Mark], limit: int = 40) -> str:
    """The last `limit` readable lines of the experiment's part of the transcript ("" when there is none)."""
    this = next((e for e in reversed(all_marks) if e.get("id") == exp_id), None)
    container = this.get("container") if this else None
    if not this or not container:
        return ""
    end = int(this.get("log_bytes") or 0)
    earlier = [int(e.get("log_bytes") or 0) for e in all_marks if e.get("container") == container]
    start = max((b for b in earlier if b < end), default=0)
    log = state.logs_dir(cfg) / f"{container}.jsonl"
    if not log.exists():
        return ""
    with open(log, "rb") as f:
        f.seek(start)
        chunk = f.read(max(end - start, 0)).decode(errors="replace")
    lines = readable(agent or "command", chunk.splitlines())[-limit:]
    return "\n".join("  " + ln for ln in lines)
