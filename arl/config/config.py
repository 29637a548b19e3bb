"""lab.toml: loading into a frozen, typed config, and finding the lab."""

from __future__ import annotations

import math
import os
import re
import sys
from pathlib import Path
from typing import Any, NamedTuple

from arl.config.engine import EngineSettings, engine_settings
from arl.config.schema import AGENT_KINDS, NUMBERS, hint, str_list, toml_place, validate
from arl.errors import ArlError

LAB_FILE = "lab.toml"


# The config's types are NamedTuples, not dataclasses: as frozen and as typed, without the import of dataclasses
# (and inspect) and the class building that cost every short command (`arl eval`) about 15 ms of start-up.
class HostService(NamedTuple):
    command: list[str]
    port: int


class RunDefaults(NamedTuple):
    max_iterations: int = 50
    max_hours: float = 8
    max_cost: float = 0
    target_score: float | None = None
    plateau_threshold: int = 10
    max_restarts: int = 3
    max_api_outage_minutes: float = 60
    iteration_timeout: float = 900
    verify: bool = True
    min_improvement: float = 0.0
    repeats: int = 1
    agents: int = 1  # parallel slots, each with its own agent container and workspace
    max_parallel_verifications: int = 0  # keeps verified at once beside the decider; 0: one per slot


class LabConfig(NamedTuple):
    path: Path  # the lab.toml file
    name: str
    pipeline_dir: Path
    agent_instructions: Path
    results_file: Path
    direction: str
    backend_module: Path
    backend_class: str
    eval_timeout: float
    host_service: HostService | None
    agent_kind: str
    agent_model: str
    agent_command: list[str]
    dockerfile: Path | None
    build_context: Path
    memory: str
    cpus: str
    pids_limit: int
    gpus: str
    env: list[str]
    max_depth: int = 64
    max_files: int = 10_000
    max_workspace_mb: float = 200
    max_notes_kb: float = 256  # /workspace/notes.md, kept by the host: cut beyond this
    network: str = ""  # "" = the agent's default: "broker" for LLM agents, "none" for the others
    allow_web: bool = False
    agent_models: tuple[str, ...] = ()  # the models the API broker forwards; empty: the model and cheap siblings
    max_output_mb: float = 100  # what a SplitBackend's pipeline may write as outputs, in all
    isolation: str = "fork"  # the backend's evaluation process: "fork" (fast) or "spawn" (a fresh interpreter)
    backend_files: tuple[str, ...] = ()  # what the backend reads beside it: globs relative to its folder
    slot_gpus: tuple[str, ...] = ()  # slot k's GPU (`--gpus device=<k-th>`); empty: `gpus` for every slot
    run: RunDefaults = RunDefaults()
    engine: EngineSettings = EngineSettings()  # where the slots run: this machine or SLURM

    @property
    def root(self) -> Path:
        return self.path.parent

    @property
    def state_dir(self) -> Path:
        return self.root / ".arl"

    @property
    def maximize(self) -> bool:
        return self.direction == "maximize"

    def better(self, a: float, b: float | None, margin: float = 0.0) -> bool:
        """Is score a better than b by more than margin (in the lab's direction)?"""
        if b is None:
            return True
        return a > b + margin if self.maximize else a < b - margin


RUN_FLOATS = ("max_hours", "max_cost", "max_api_outage_minutes", "iteration_timeout", "min_improvement")


def find_lab(start: Path | None = None, explicit: str | os.PathLike[str] | None = None) -> Path:
    """The lab.toml for --lab PATH, $ARL_LAB, or the first one walking up from the current folder."""
    given = explicit or os.environ.get("ARL_LAB")
    if given:
        p = Path(given).expanduser().resolve()
        f = p / LAB_FILE if p.is_dir() else p
        if not f.is_file():
            raise ArlError(f"no {LAB_FILE} at {p} (--lab takes the lab folder or its lab.toml)")
        return f
    here = (start or Path.cwd()).resolve()
    for d in (here, *here.parents):
        if (d / LAB_FILE).is_file():
            return d / LAB_FILE
    raise ArlError(f"no {LAB_FILE} in {here} or any folder above it; run `arl init` or pass --lab PATH")


def _toml() -> Any:
    """The TOML parser, imported on first use: finding a lab or reading the run state needs none."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib  # pyright: ignore[reportMissingImports]
    return tomllib


def __getattr__(name: str) -> Any:
    if name == "tomllib":  # `config.tomllib`, as other modules spell it
        return _toml()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def read_toml(path: Path) -> dict[str, Any]:
    """lab.toml as tomllib reads it, its errors naming the file and the place."""
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as e:
        raise ArlError(f"cannot read {path}: {e.strerror}")
    except UnicodeDecodeError:
        raise ArlError(f"{path}: not UTF-8 text")
    if "\r" in text:  # the universal newlines of read_text, as lab.toml was always read
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    tomllib = _toml()
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ArlError(f"{path}: invalid TOML{toml_place(path, str(e))}: {e}")


def load(path: Path) -> LabConfig:
    tables = validate(path, read_toml(path))
    root = path.parent.resolve()
    lab, be, ag, sb, rn = (tables[t] for t in ("lab", "backend", "agent", "sandbox", "run"))

    def where(table: str, key: str) -> str:
        return f"{path}: [{table}] {key}"

    if lab["direction"] not in ("minimize", "maximize"):
        raise ArlError(f'{where("lab", "direction")} must be "minimize" or "maximize", not {lab["direction"]!r}')
    for table, key in NUMBERS:
        value = tables[table][key]
        if isinstance(value, float) and not math.isfinite(value):
            raise ArlError(f"{where(table, key)} must be a finite number, not {value}")
    if be["isolation"] not in ("fork", "spawn"):
        raise ArlError(f'{where("backend", "isolation")} must be "fork" or "spawn", not {be["isolation"]!r}')
    if be["eval_timeout"] <= 0:
        raise ArlError(f"{where('backend', 'eval_timeout')} must be a positive number of seconds")
    if be["max_output_mb"] <= 0:
        raise ArlError(f"{where('backend', 'max_output_mb')} must be a positive number of MB")
    for key in ("max_iterations", "plateau_threshold", "max_restarts", "repeats", "max_parallel_verifications"):
        if rn[key] < (1 if key == "repeats" else 0):
            raise ArlError(f"{where('run', key)} must not be negative" + (" or zero" if key == "repeats" else ""))
    for key in ("max_hours", "max_cost", "iteration_timeout", "min_improvement", "max_api_outage_minutes"):
        if rn[key] < 0:
            raise ArlError(f"{where('run', key)} must not be negative")
    target = rn["target_score"]
    if isinstance(target, str):
        if target.strip():
            try:
                target = float(target)
            except ValueError:
                raise ArlError(f'{where("run", "target_score")} must be a number or "" (unset)')
        else:
            target = None
    elif target is not None:
        target = float(target)
    kind = ag["kind"]
    if kind not in AGENT_KINDS and not re.fullmatch(r"[A-Za-z_][\w.]*[.:][A-Za-z_]\w*", kind):
        raise ArlError(
            f"{where('agent', 'kind')} is {kind!r}: use one of {', '.join(AGENT_KINDS)} or a dotted path "
            f"module:Class{hint(kind, AGENT_KINDS)}"
        )
    pipeline = (root / lab["pipeline_dir"]).resolve()
    if pipeline == root or root.is_relative_to(pipeline) or (root / be["module"]).resolve().is_relative_to(pipeline):
        raise ArlError(
            f"{where('lab', 'pipeline_dir')} must be a folder inside the lab that holds neither lab.toml "
            f"nor the backend (the agent may change everything in it)"
        )
    if sb["network"] not in ("", "none", "broker", "bridge"):
        raise ArlError(f'{where("sandbox", "network")} must be "none", "broker" or "bridge", not {sb["network"]!r}')
    for key in ("max_depth", "max_files", "max_workspace_mb", "max_notes_kb"):
        if sb[key] <= 0:
            raise ArlError(f"{where('sandbox', key)} must be a positive number")
    agent_cmd = ag["command"]
    agent_cmd = agent_cmd.split() if isinstance(agent_cmd, str) else agent_cmd
    str_list(agent_cmd, where("agent", "command"))
    str_list(sb["env"], where("sandbox", "env"))
    str_list(ag["models"], where("agent", "models"))
    str_list(sb["slot_gpus"], where("sandbox", "slot_gpus"))
    str_list(be["files"], where("backend", "files"))
    if sb["slot_gpus"] and sb["gpus"]:
        raise ArlError(f"{where('sandbox', 'slot_gpus')} and gpus both set: slot_gpus gives each slot its own")
    if rn["agents"] < 1:
        raise ArlError(f"{where('run', 'agents')} must be at least 1")
    service = None
    if "backend.host_service" in tables:
        hs = tables["backend.host_service"]
        cmd = hs["command"]
        cmd = cmd.split() if isinstance(cmd, str) else cmd
        str_list(cmd, where("backend.host_service", "command"))
        if not cmd:
            raise ArlError(f"{where('backend.host_service', 'command')} is empty")
        if not 0 < hs["port"] < 65536:
            raise ArlError(f"{where('backend.host_service', 'port')} must be between 1 and 65535")
        service = HostService(command=cmd, port=hs["port"])
    run: dict[str, Any] = {k: float(v) if k in RUN_FLOATS else v for k, v in rn.items()}
    run["target_score"] = target
    return LabConfig(
        path=path.resolve(),
        name=lab["name"] or root.name,
        pipeline_dir=_under(root, lab["pipeline_dir"]),
        agent_instructions=_under(root, lab["agent_instructions"]),
        results_file=_under(root, lab["results_file"]),
        direction=lab["direction"],
        backend_module=_under(root, be["module"]),
        backend_class=be["class"],
        eval_timeout=float(be["eval_timeout"]),
        max_output_mb=float(be["max_output_mb"]),
        host_service=service,
        agent_kind=ag["kind"],
        agent_model=ag["model"],
        agent_command=list(agent_cmd),
        dockerfile=_under(root, sb["dockerfile"]) if sb["dockerfile"] else None,
        build_context=_under(root, sb["build_context"]),
        memory=sb["memory"],
        cpus=str(sb["cpus"]),
        pids_limit=sb["pids_limit"],
        gpus=sb["gpus"],
        env=list(sb["env"]),
        max_depth=sb["max_depth"],
        max_files=sb["max_files"],
        max_workspace_mb=float(sb["max_workspace_mb"]),
        max_notes_kb=float(sb["max_notes_kb"]),
        network=sb["network"],
        allow_web=ag["allow_web"],
        agent_models=tuple(ag["models"]),
        isolation=be["isolation"],
        slot_gpus=tuple(sb["slot_gpus"]),
        backend_files=tuple(be["files"]),
        engine=engine_settings(tables["engine"], lambda key: where("engine", key)),
        run=RunDefaults(**run),
    )


def _under(root: Path, rel: str) -> Path:
    """A path from lab.toml: relative to the lab's folder (absolute ones stay), `..` folded, links untouched."""
    return Path(os.path.normpath(root / Path(rel).expanduser()))
