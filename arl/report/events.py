"""What each slot's agent was doing when, for the report's timeline: the loop appends one line per transition to
`.arl/runs/<run>/events.jsonl` ({"t": time, "slot": k, "what": ...}) where it happens, and the page reads them back
as intervals. A line costs one append (tens of microseconds); a line that cannot be written is lost, never an error:
the timeline is a view.

The transitions (`what`):
  launch    a container started: the agent thinks
  verdict   its verdict landed (the verdict file's time): it waits for the decision
  freeze    the decider paused it (a decision, its keep verified or committed meanwhile)
  verify    its keep is verified beside the decider: it stays frozen until the result is recorded
  thaw      unpaused after its decision: it thinks again
  budget    max_cost reached: frozen until the run ends
  end       its container ended, went silent or vanished: relaunched (or the run ends)
  api-wait  its session stopped on API errors: waiting for the API before the relaunch
  backoff   its sessions keep ending without a verdict: waiting before the relaunch"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from arl.config.config import LabConfig
    from arl.runstate.runstate import RunState

KINDS = ("launch", "verdict", "freeze", "verify", "thaw", "budget", "end", "api-wait", "backoff")


def path(cfg: LabConfig, run: int) -> Path:
    return cfg.state_dir / "runs" / str(run) / "events.jsonl"


def record(cfg: LabConfig, st: RunState, slot: int, what: str, t: float | None = None) -> None:
    """One transition of the slot's agent, now (or at `t`, when it happened earlier: a verdict's landing)."""
    p = path(cfg, int(st.get("run") or 0))
    line = json.dumps({"t": round(time.time() if t is None else t, 4), "slot": slot, "what": what}) + "\n"
    try:
        try:
            fd = os.open(p, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except FileNotFoundError:
            p.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(p, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, line.encode())  # one write of one short line: appends never interleave
        finally:
            os.close(fd)
    except OSError:
        pass  # a view's record: the run goes on without it


def read(cfg: LabConfig) -> dict[int, list[list[Any]]]:
    """run -> its transitions as [t, slot, what], in time order (a damaged or unknown line is skipped)."""
    out: dict[int, list[list[Any]]] = {}
    try:
        folders = [p for p in (cfg.state_dir / "runs").iterdir() if p.name.isdigit()]
    except OSError:
        return out
    for folder in sorted(folders, key=lambda p: int(p.name)):
        got = []
        try:
            text = (folder / "events.jsonl").read_text(errors="replace")
        except OSError:
            continue
        for line in text.splitlines():
            try:
                e = json.loads(line)
                t, slot, what = float(e["t"]), int(e["slot"]), str(e["what"])
            except (ValueError, KeyError, TypeError):
                continue
            if what in KINDS:
                got.append([t, slot, what])
        out[int(folder.name)] = sorted(got, key=lambda x: x[0])
    return out
