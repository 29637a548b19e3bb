"""`arl-step preflight`: check the lab, take the lock, repair what a dead run left, start the run state."""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Any

from arl.errors import ArlError
from arl.lab import gitops, results, slots, state
from arl.lab.config import LabConfig
from arl.lab.context import open_lab
from arl.steps.common import OK
from arl.util import sh


def resolve_settings(cfg: LabConfig, args: argparse.Namespace) -> dict[str, Any]:
    """Flags override lab.toml's [run]; the result is what every later step reads."""
    r = cfg.run

    def pick(flag: str, default: Any) -> Any:
        v = getattr(args, flag, None)
        return default if v is None else v

    data = Path(args.data).resolve()
    if not data.is_dir():
        how = "make research DATA=DIR" if os.environ.get("MAKELEVEL") else "pass --data DIR"  # said as make takes it
        raise ArlError(f"data folder {args.data} does not exist ({how})")
    holdout = Path(args.holdout).resolve() if getattr(args, "holdout", None) else None
    if holdout is not None and not holdout.is_dir():
        raise ArlError(f"holdout folder {args.holdout} does not exist")
    settings = {
        "data": str(data),
        "holdout": str(holdout) if holdout else None,
        "agent": pick("agent", cfg.agent_kind),
        "model": pick("model", cfg.agent_model),
        "max_iterations": pick("max_iterations", r.max_iterations),
        "max_hours": pick("max_hours", r.max_hours),
        "max_cost": pick("max_cost", r.max_cost),
        "target_score": pick("target_score", r.target_score),
        "plateau_threshold": pick("plateau_threshold", r.plateau_threshold),
        "max_restarts": pick("max_restarts", r.max_restarts),
        "max_api_outage_minutes": r.max_api_outage_minutes,
        "iteration_timeout": pick("iteration_timeout", r.iteration_timeout),
        "repeats": pick("repeats", r.repeats),
        "verify": r.verify and not getattr(args, "no_verify", False),
        "min_improvement": r.min_improvement,
        "branch": getattr(args, "branch", None),
        "prompt": getattr(args, "prompt", "") or "",
        "agent_args": list(getattr(args, "agent_args", []) or []),
        "use_oauth_osx": bool(getattr(args, "use_oauth_osx", False)),
        "seed": getattr(args, "seed", None),
        "agents": pick("agents", r.agents),
    }
    for key in ("max_iterations", "plateau_threshold", "max_restarts", "repeats", "agents"):
        if settings[key] < (1 if key in ("repeats", "agents") else 0):
            raise ArlError(f"--{key.replace('_', '-')} must not be negative" + (" or zero" if key == "agents" else ""))
    if cfg.slot_gpus and len(cfg.slot_gpus) < settings["agents"]:
        raise ArlError(
            f"{settings['agents']} agents but [sandbox] slot_gpus names {len(cfg.slot_gpus)} GPUs: one GPU per slot"
        )
    return settings


def preflight(lab: str | None, args: argparse.Namespace, owner_pid: int) -> int:
    cfg = open_lab(lab)
    if not cfg.pipeline_dir.is_dir():
        raise ArlError(f"pipeline folder {cfg.pipeline_dir} does not exist ([lab] pipeline_dir in {cfg.path})")
    settings = resolve_settings(cfg, args)
    from arl.agents.launch import check_agent

    check_agent(cfg, settings)  # credentials first: nothing is built or launched without them
    stale = state.acquire_lock(cfg, owner_pid)
    try:
        old = state.load(cfg)
        if stale is not None or old.get("active"):
            from arl.steps.repair import repair

            sh.say(
                f"found an earlier run (run {old.get('run', '?')}, pid {(stale or {}).get('pid', '?')}) that "
                f"did not finish; repairing its state before starting"
            )
            repair(cfg, old)
        dirty = gitops.pipeline_dirty(cfg)
        if dirty:
            raise ArlError(
                f"the pipeline has uncommitted changes ({dirty[0].strip()}); commit or stash them "
                f"first: the agent starts from the last commit, and a keep rewrites the pipeline folder"
            )
        branch = gitops.use_branch(cfg, settings["branch"])
        results.ensure_file(cfg.results_file)
        hist = results.read(cfg.results_file)
        run = max([r["run"] or 0 for r in hist.rows] + [old.get("run", 0)]) + 1
        st: dict[str, Any] = {
            "active": True,
            "run": run,
            "pid": owner_pid,
            "phase": "preflight",
            "started": time.time(),
            "settings": settings,
            "branch": branch,
            "iterations": 0,
            "launches": 0,
            "cost": 0.0,
            "stop_reason": None,
        }
        for k in range(settings["agents"]):  # each slot's verdict sequence goes on from where it was
            last = slots.of(old, k).get("seq", 0) if old else 0
            slots.of(st, k).update(seq=last + 1, container=None, last_progress=time.time())
        state.save(cfg, st)
        state.log_event(cfg, {"event": "start", "run": run, "pid": owner_pid, "settings": settings})
    except BaseException:
        if stale is None and not state.load(cfg).get("active"):
            state.release_lock(cfg)
        raise
    print(
        f"run {run} of lab {cfg.name!r} on branch {branch}: agent {settings['agent']}, "
        f"{len(hist.rows)} earlier experiments"
    )
    return OK


def from_args(args: argparse.Namespace) -> int:
    # In `make research` every step is its own process; the lock belongs to the recipe's shell.
    owner = int(os.environ.get("ARL_RUN_PID") or os.getppid())
    return preflight(args.lab, args, owner)
