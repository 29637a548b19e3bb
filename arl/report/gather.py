"""The page's data: for each lab its rows (as `arl plot` reads them), its runs (from .arl/runs.jsonl) and each
experiment's details, as one JSON text that is safe inside a <script> element (details.script_safe)."""

from __future__ import annotations

import datetime as dt
import json
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypedDict

from arl.report import details, events, transcript
from arl.report.series import Series
from arl.runstate import state

if TYPE_CHECKING:
    from arl.config.config import LabConfig
    from arl.history.format import Row


class RunInfo(TypedDict):
    run: int
    started: float | None
    ended: float | None
    reason: str | None
    cost: float | None
    agent: str | None
    agents: int


@dataclass
class Lab:
    """One lab on the page: its history (the data layer `arl plot` reads) and, when its lab.toml is known, its
    configuration (for the refs, the transcripts and the runs)."""

    series: Series
    cfg: LabConfig | None


def runs(cfg: LabConfig) -> list[RunInfo]:
    """Each run's start, end, stop reason and cost, from .arl/runs.jsonl."""
    out: dict[int, RunInfo] = {}
    for e in transcript.events(cfg, ("start", "stop", "end")):
        try:
            n = int(e.get("run") or 0)
        except (TypeError, ValueError):
            continue
        r = out.setdefault(n, RunInfo(run=n, started=None, ended=None, reason=None, cost=None, agent=None, agents=1))
        when = e.get("time") if isinstance(e.get("time"), (int, float)) else None
        if e["event"] == "start":
            settings: dict[str, Any] = e["settings"] if isinstance(e.get("settings"), dict) else {}
            agents = settings.get("agents")
            r.update(started=when, ended=None, agent=str(settings.get("agent") or ""))
            r["agents"] = agents if isinstance(agents, int) and agents > 0 else 1
        elif e["event"] == "stop":
            r["reason"] = str(e.get("reason") or "")
        else:
            r["ended"] = when
            r["reason"] = r["reason"] or str(e.get("reason") or "")
            r["cost"] = float(e["cost"]) if isinstance(e.get("cost"), (int, float)) else None
    return [out[k] for k in sorted(out)]


def _finite(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, dict):
        return {str(k): _finite(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_finite(x) for x in v]
    return v


def row_json(r: Row) -> str:
    """A row as JSON that JavaScript's JSON.parse reads (a non-finite number in the metrics becomes null)."""
    try:
        return json.dumps(r, default=str, allow_nan=False)
    except ValueError:
        return json.dumps(_finite(dict(r)), default=str)


_texts: dict[str, tuple[list[Row], list[str]]] = {}  # results file -> its rows and their JSON, in this process


def row_texts(s: Series) -> list[str]:
    """Every row as JSON, safe inside a script element: those this process made before for the same rows (the loop
    re-reads a growing history, its earlier rows the same objects); only the rest are dumped here."""
    old_rows, texts = _texts.get(str(s.path), ([], []))
    n = len(old_rows)
    if not (n and len(s.rows) >= n and s.rows[n - 1] is old_rows[-1]):
        texts = []
    texts = texts[: len(s.rows)] + [details.script_safe(row_json(r)) for r in s.rows[len(texts) :]]
    _texts[str(s.path)] = (list(s.rows), texts)
    return texts


def lab_json(lab: Lab) -> str:
    s, cfg = lab.series, lab.cfg
    head: dict[str, Any] = {"name": s.label, "maximize": s.maximize, "path": str(s.path)}
    head.update(runs=runs(cfg) if cfg else [], events=events.read(cfg) if cfg else {})  # events: for the timeline
    detail_lines = details.refresh(cfg, s.rows) if cfg is not None else []
    text = details.script_safe(json.dumps(head)[:-1])
    return f'{text}, "rows": [{", ".join(row_texts(s))}], "details": [{", ".join(detail_lines)}]}}'


def page_json(labs: list[Lab], active: bool) -> str:
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    head = json.dumps({"generated": now, "active": active})[:-1]
    return f'{head}, "labs": [{", ".join(lab_json(lab) for lab in labs)}]}}'  # each part made safe on its own


def run_active(cfg: LabConfig) -> bool:
    """A run of this lab is going on (its state says so and the process that holds the lock is alive)."""
    lock = state.read_lock(cfg)
    return bool(state.load(cfg).get("active")) and lock is not None and state.pid_alive(lock.get("pid"))
