"""The shapes of what arl keeps, typed: a row of results.tsv, and the run state (`.arl/state.json`). Preflight
builds the state (`new_run`) from the settings (`resolve_settings`: lab.toml's [run] under the command's flags);
every step reads and extends it."""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Any, TypedDict

from arl.errors import ArlError
from arl.lab.config import LabConfig


class Row(TypedDict):
    """One experiment of results.tsv, parsed (an empty cell is None)."""

    id: int | None
    run: int | None
    time: str | None
    outcome: str | None
    score: float | None  # the agent's claim
    verified_score: float | None  # the host's measurement
    holdout_score: float | None
    best: float | None  # the best score when it was recorded
    cost_usd: float | None
    commit: str | None  # the experiment's snapshot commit (a keep's is on the branch)
    agent: str | None
    notes: str
    metrics: dict[str, Any]
    slot: int | None


class Settings(TypedDict):
    """A run's settings, fixed at its start: lab.toml's [run] with the command's flags over it."""

    data: str
    holdout: str | None
    agent: str
    model: str | None
    max_iterations: int
    max_hours: float
    max_cost: float
    target_score: float | None
    plateau_threshold: int
    max_restarts: int
    max_api_outage_minutes: float
    iteration_timeout: float
    repeats: int
    verify: bool
    min_improvement: float
    branch: str | None
    prompt: str
    agent_args: list[str]
    use_oauth_osx: bool
    seed: int | None
    agents: int


class _Slot(TypedDict):
    seq: int  # the verdict sequence number the slot's agent must write next


class SlotState(_Slot, total=False):
    """One slot's agent container and the bookkeeping of the session in it."""

    container: str | None
    follower: int | None  # pid of the `docker run` that streams the transcript
    launched_at: float
    last_progress: float  # the iteration timeout counts from here
    shown_bytes: int  # how much of the transcript the live view printed
    verdicts_since_launch: int
    idle_ends: int  # sessions in a row that ended without a verdict
    retry_at: float
    outage_attempts: int
    outage_since: float
    last_end: str  # how the last session ended, for the relaunched one's preamble
    detected_at: float
    restarts: int  # container failures in a row
    deciding: int | None  # the seq of the verdict being decided (journal for a repair)
    cost: float  # closed containers + the live one
    cost_closed: float
    cost_attributed: float  # the part already charged to experiments


class Ready(TypedDict):
    """What `wait` found, for `decide` or `restart`."""

    slot: int
    why: str  # "verdict", "gone" or "timeout"


class _Run(TypedDict):
    active: bool
    run: int
    pid: int
    phase: str
    started: float
    settings: Settings
    branch: str
    iterations: int
    launches: int
    cost: float
    stop_reason: str | None
    slots: dict[str, SlotState]


class RunState(_Run, total=False):
    """The run: written by preflight, extended by the steps. A state read from disk may lack any key (no run yet):
    read it with .get() until `require_run` has checked that it is a run."""

    image: str
    ready: Ready
    fatal: str  # a reason the run must stop now (e.g. the API has failed for too long)
    retry_at: float
    service_pid: int | None
    service_restarts: int


def image_of(st: RunState) -> str:
    """The run's sandbox image: set by the `image` step, which the agent and every verification need first."""
    image = st.get("image")
    if not image:
        raise ArlError("this run has no sandbox image yet: run `arl-step image` first")
    return image


def resolve_settings(cfg: LabConfig, args: argparse.Namespace) -> Settings:
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
    settings = Settings(
        data=str(data),
        holdout=str(holdout) if holdout else None,
        agent=pick("agent", cfg.agent_kind),
        model=pick("model", cfg.agent_model),
        max_iterations=pick("max_iterations", r.max_iterations),
        max_hours=pick("max_hours", r.max_hours),
        max_cost=pick("max_cost", r.max_cost),
        target_score=pick("target_score", r.target_score),
        plateau_threshold=pick("plateau_threshold", r.plateau_threshold),
        max_restarts=pick("max_restarts", r.max_restarts),
        max_api_outage_minutes=r.max_api_outage_minutes,
        iteration_timeout=pick("iteration_timeout", r.iteration_timeout),
        repeats=pick("repeats", r.repeats),
        verify=r.verify and not getattr(args, "no_verify", False),
        min_improvement=r.min_improvement,
        branch=getattr(args, "branch", None),
        prompt=getattr(args, "prompt", "") or "",
        agent_args=list(getattr(args, "agent_args", []) or []),
        use_oauth_osx=bool(getattr(args, "use_oauth_osx", False)),
        seed=getattr(args, "seed", None),
        agents=pick("agents", r.agents),
    )
    for key in ("max_iterations", "plateau_threshold", "max_restarts", "repeats", "agents"):
        if settings[key] < (1 if key in ("repeats", "agents") else 0):
            raise ArlError(f"--{key.replace('_', '-')} must not be negative" + (" or zero" if key == "agents" else ""))
    if cfg.slot_gpus and len(cfg.slot_gpus) < settings["agents"]:
        raise ArlError(
            f"{settings['agents']} agents but [sandbox] slot_gpus names {len(cfg.slot_gpus)} GPUs: one GPU per slot"
        )
    return settings


def new_run(run: int, owner_pid: int, settings: Settings, branch: str, previous: RunState | None) -> RunState:
    """The state of a run that starts now. Each slot's verdict sequence goes on from where the previous run's was
    (an agent's stale verdict file can never pass for a new one)."""
    now = time.time()
    old_slots = (previous or {}).get("slots") or {}
    return RunState(
        active=True,
        run=run,
        pid=owner_pid,
        phase="preflight",
        started=now,
        settings=settings,
        branch=branch,
        iterations=0,
        launches=0,
        cost=0.0,
        stop_reason=None,
        slots={
            str(k): SlotState(seq=old_slots.get(str(k), {}).get("seq", 0) + 1, container=None, last_progress=now)
            for k in range(settings["agents"])
        },
    )
