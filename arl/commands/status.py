"""`arl status`: is a run active, its phase, experiment, best score, elapsed time, cost, container."""

from __future__ import annotations

import argparse
import json
import time
from typing import TYPE_CHECKING, Any

from arl.config.config import LabConfig
from arl.config.context import open_lab
from arl.engines.choose import engine_of
from arl.history import results
from arl.report.live import path as report_path
from arl.runstate import slots, state
from arl.runstate.runstate import RunState
from arl.util.text import clean

if TYPE_CHECKING:
    from arl.history.format import Row


def status_of(cfg: LabConfig) -> dict[str, Any]:
    st = state.load(cfg)
    lock = state.read_lock(cfg)
    active = bool(st.get("active")) and lock is not None and state.pid_alive(lock.get("pid"))
    is_open = bool(st.get("active")) and not active and lock is not None
    live = active or is_open
    rows = results.read(cfg.results_file).rows
    b, _ = results.best_of(cfg, rows)
    return {
        "active": active,
        # the state says a run is on, its starting process is gone: steps run by hand (each from a shell that has
        # ended), or a run that died; either way it is not over until teardown or the next run's repair
        "open": is_open,
        "pid": (lock or {}).get("pid") if active else None,
        "run": st.get("run"),
        "phase": st.get("phase") if live else ("died" if st.get("active") else st.get("phase")),
        "experiment": rows[-1]["id"] if rows else None,
        "best": b,
        "elapsed_s": round(time.time() - st["started"], 1) if active and st.get("started") else None,
        "cost_usd": round(float(st.get("cost", 0.0)), 6),
        "container": slots.of(st, 0).get("container") if live else None,
        "stop_reason": st.get("stop_reason"),
        "slots": [_slot(cfg, st, k, rows, live) for k in slots.numbers(st)] if st.get("settings") else [],
        "report": str(page) if (page := report_path(cfg)).exists() else None,
    }


def _slot(cfg: LabConfig, st: RunState, k: int, rows: list[Row], active: bool) -> dict[str, Any]:
    sl = slots.of(st, k)
    mine = [r for r in rows if int(r.get("slot") or 0) == k and r["run"] == st.get("run")]
    job = sl.get("verifying")
    if not active:
        state_ = "stopped"
    elif job:
        state_ = f"verifying its keep for {time.time() - job['since']:.0f} s (frozen meanwhile)"
    elif sl.get("queued"):
        state_ = f"queued ({sl.get('queued')})"
    elif sl.get("deciding") is not None:
        state_ = "deciding"
    elif sl.get("container"):
        state_ = "running"
    else:
        state_ = "waiting" if sl.get("last_end") else "not started"
    return {
        "slot": k,
        "state": state_,
        "container": sl.get("container") if active else None,
        # where its container runs (a SLURM job: its id, node and state); empty on this machine
        "where": engine_of(cfg, st).describe(name) if active and (name := sl.get("container")) else "",
        "experiments": len(mine),
        "last_outcome": mine[-1]["outcome"] if mine else None,
        "cost_usd": round(float(sl.get("cost", 0.0)), 6),
    }


def status(cfg: LabConfig, as_json: bool) -> int:
    s = status_of(cfg)
    if as_json:
        print(json.dumps(s))
        return 0
    # The stop reason (a fatal error's message) and the phase may quote the agent.
    if s["open"]:
        print(
            clean(
                f"run {s['run']} is open, phase {s['phase']}, but the process that started it has exited: it is driven "
                "step by step (arl-step), or it died; `arl-step teardown` closes it, the next `arl run` repairs it"
            )
        )
    if s["active"]:
        print(clean(f"run {s['run']} active (pid {s['pid']}), phase {s['phase']}, elapsed {s['elapsed_s']:.0f} s"))
    if s["active"] or s["open"]:
        if len(s["slots"]) > 1:
            for sl in s["slots"]:
                print(
                    clean(
                        f"slot {sl['slot']}: {sl['state']}, {sl['experiments']} experiments, last "
                        f"{sl['last_outcome'] or '-'}, cost ${sl['cost_usd']:.4f}, container {sl['container'] or '-'}"
                        + (f" ({sl['where']})" if sl["where"] else "")
                    )
                )
        else:
            where = s["slots"][0]["where"] if s["slots"] else ""
            print(clean(f"container: {s['container'] or '-'}" + (f" ({where})" if where else "")))
    else:
        print(clean(f"no active run (last run {s['run'] or '-'}: {s['stop_reason'] or s['phase'] or 'none yet'})"))
    best = "-" if s["best"] is None else f"{s['best']:.6g}"
    print(
        f"experiments: {s['experiment'] if s['experiment'] is not None else '-'}   best: {best}   "
        f"cost: ${s['cost_usd']:.4f}"
    )
    if s["report"]:
        print(f"report: {s['report']}" + (" (refreshed after each experiment)" if s["active"] else ""))
    return 0


def from_args(args: argparse.Namespace) -> int:
    return status(open_lab(args.lab), args.json)
