"""The run state's shapes, typed (`.arl/state.json`; a row of results.tsv: arl.history.format). Preflight
builds the state (`new_run`) from the settings (`resolve_settings`: lab.toml's [run] under the command's flags);
every step reads and extends it."""

from __future__ import annotations

import argparse
import math
import os
import re
import time
from pathlib import Path
from typing import Any, TypedDict

from arl.config.config import LabConfig
from arl.errors import ArlError


class _Settings(TypedDict):
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


class Settings(_Settings, total=False):
    """A run's settings, fixed at its start: lab.toml's [run] with the command's flags over it."""

    engine: str  # `--engine`: where the slots run (else lab.toml's [engine] kind)


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
    verifying: Verifying  # its keep's verification, running beside the decider
    queued: str  # its job waits in the scheduler's queue (the reason): no iteration timeout runs meanwhile


class Verifying(TypedDict):
    """A keep being verified by a job of its own (arl.loop.verifying)."""

    seq: int
    tree: str
    pid: int
    since: float
    cost: float  # what the experiment had cost when its verification began


class HistorySummary(TypedDict):
    """What the loop needs of results.tsv, kept in the run state and updated as each row is appended, so that a
    decision reads none of the history. It holds for the file of exactly this size and modification time; any
    other file (a vetoed row cut, an edit by hand) is read once again to make it."""

    size: int
    mtime_ns: int
    next_id: int
    best: float | None  # the best score since the last baseline (as results.best_of gives it)
    best_id: int | None
    plateau: int  # experiments in a row that did not beat the best before them (results.plateau)
    cost: float  # every row's cost_usd, added up


class Ready(TypedDict):
    """What `wait` found, for `decide` or `restart`."""

    slot: int
    why: str  # "verdict", "verified", "gone" or "timeout"


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
    history: HistorySummary


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

    check_host(cfg)
    data = _data_folder(cfg, getattr(args, "data", None), "DATA" if os.environ.get("MAKELEVEL") else "--data")
    given = getattr(args, "holdout", None)
    holdout = _data_folder(cfg, given, "--holdout") if given is not None else None
    settings = Settings(
        data=str(data),
        holdout=str(holdout) if holdout else None,
        agent=pick("agent", cfg.agent_kind),
        model=pick("model", cfg.agent_model),
        max_iterations=pick("max_iterations", r.max_iterations),
        max_hours=pick("max_hours", r.max_hours),
        max_cost=pick("max_cost", r.max_cost),
        target_score=None if getattr(args, "target_score", None) == "off" else pick("target_score", r.target_score),
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
        engine=pick("engine", cfg.engine.kind),
    )
    for key in ("max_iterations", "plateau_threshold", "max_restarts", "repeats", "agents"):
        if settings[key] < (1 if key in ("repeats", "agents") else 0):
            raise ArlError(f"--{key.replace('_', '-')} must not be negative" + (" or zero" if key == "agents" else ""))
    if cfg.slot_gpus and len(cfg.slot_gpus) < settings["agents"]:
        raise ArlError(
            f"{settings['agents']} agents but [sandbox] slot_gpus names {len(cfg.slot_gpus)} GPUs: one GPU per slot"
        )
    return settings


def target_flag(text: str) -> float | str:
    """--target-score: a number, 0 a target like any other; `off` for none. autoresearch-lab read 0 as "off": a bare
    0 is refused with both spellings, so a habit from there cannot stop a run at once or never."""
    if text.strip().lower() in ("off", "none"):
        return "off"
    if text.strip() in ("0", "-0", "+0"):
        raise argparse.ArgumentTypeError("0 is ambiguous: 'off' for no target, 0.0 for a target of zero")
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number (or 'off')") from None


def _data_folder(cfg: LabConfig, given: str | None, flag: str) -> Path:
    """A data folder as given (`DATA=` in make, `--data` otherwise): it exists, and it holds neither the lab nor the
    repository (mounted read-only into the sandbox, it would show `.git`, `.arl` and the history's holdout scores)."""
    how = "make research DATA=DIR" if flag == "DATA" else f"pass {flag} DIR"  # said as make takes it
    if given is None or not str(given).strip():
        raise ArlError(f"{flag} is {'empty' if given is not None else 'missing'}: the folder to evaluate on ({how})")
    path = Path(given).expanduser().resolve()
    if not path.is_dir():
        raise ArlError(f"{flag}: data folder {given} does not exist ({how})")
    from arl.git.repo import top

    for inside, what in ((cfg.root, "the lab"), (top(cfg), "the repository")):
        if inside.resolve().is_relative_to(path):
            raise ArlError(
                f"{flag}: {given} holds {what} ({inside}); a data folder is mounted into the sandbox and must be "
                "a folder of data only, beside or inside the lab (e.g. the lab's data/)"
            )
    return path


def check_host(cfg: LabConfig) -> None:
    """What a run needs of this machine and repository before anything runs: a repository with a commit that holds
    the pipeline, the instructions file, [sandbox] values docker takes."""
    from arl.util import sh

    code, top, _ = sh.run(sh.git(cfg.root)["rev-parse", "--show-toplevel"], ok=None, quiet=True)
    if code != 0:
        raise ArlError(
            f"{cfg.root} is not in a git repository: arl keeps the history in git (git init, commit the lab)"
        )
    if not cfg.pipeline_dir.resolve().is_relative_to(Path(top.strip()).resolve()):
        raise ArlError(f"{cfg.path}: [lab] pipeline_dir {cfg.pipeline_dir} is outside the repository {top.strip()}")
    if sh.run(sh.git(cfg.root)["rev-parse", "--verify", "--quiet", "HEAD"], ok=None, quiet=True)[0] != 0:
        raise ArlError("the repository has no commit yet: commit the lab first (the line `arl init` printed)")
    if not cfg.agent_instructions.is_file():
        raise ArlError(f"{cfg.path}: [lab] agent_instructions: {cfg.agent_instructions} does not exist")
    # [sandbox] memory and cpus as docker takes them (`--memory 8g`, at least 6 MB; `--cpus 1.5`, at most the
    # machine's CPUs), so a typo is an error naming the key, not a container that fails to start
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgtp]?)i?b?\s*", cfg.memory, re.I)
    if cfg.memory and (m is None or float(m[1]) * 1024 ** " kmgtp".index(m[2].lower() or " ") < 6 * 2**20):
        raise ArlError(f'{cfg.path}: [sandbox] memory must be a size docker takes, e.g. "8g" or "512m" (at least 6m)')
    try:
        cpus = float(cfg.cpus) if cfg.cpus.strip() else None
    except ValueError:
        cpus = math.nan
    if cfg.pids_limit <= 0:  # docker reads 0 and -1 as "no limit", which arl never gives an agent
        raise ArlError(f"{cfg.path}: [sandbox] pids_limit must be a positive number (docker's -1 is no limit)")
    have = os.cpu_count() or 1
    if cpus is not None and not (math.isfinite(cpus) and 0 < cpus <= have):
        raise ArlError(
            f"{cfg.path}: [sandbox] cpus must be a number of CPUs above 0 and at most {have} (this machine's)"
        )


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
