"""lab.toml: loading into a frozen, typed config, and finding the lab."""

from __future__ import annotations

import difflib
import math
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ArlError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib  # pyright: ignore[reportMissingImports]

LAB_FILE = "lab.toml"

_NUM = (int, float)
# table -> key -> (accepted types, default, required). The one place the file's shape is written down.
SCHEMA: dict[str, dict[str, tuple[tuple[type, ...], Any, bool]]] = {
    "lab": {
        "name": ((str,), None, False),
        "pipeline_dir": ((str,), "pipeline", False),
        "agent_instructions": ((str,), "AGENT.md", False),
        "results_file": ((str,), "results.tsv", False),
        "direction": ((str,), "minimize", False),
    },
    "backend": {
        "module": ((str,), "backend.py", False),
        "class": ((str,), None, True),
        "eval_timeout": (_NUM, 600, False),
    },
    "backend.host_service": {
        "command": ((str, list), None, True),
        "port": ((int,), None, True),
    },
    "agent": {
        "kind": ((str,), "claude", False),
        "model": ((str,), "", False),
        "command": ((list, str), [], False),
    },
    "sandbox": {
        "dockerfile": ((str,), "", False),
        "build_context": ((str,), ".", False),
        "memory": ((str,), "", False),
        "cpus": ((str, int, float), "", False),
        "pids_limit": ((int,), 512, False),
        "gpus": ((str,), "", False),
        "env": ((list,), [], False),
    },
    "run": {
        "max_iterations": ((int,), 50, False),
        "max_hours": (_NUM, 8, False),
        "max_cost": (_NUM, 0, False),
        "target_score": ((str, int, float), "", False),
        "plateau_threshold": ((int,), 10, False),
        "max_restarts": ((int,), 3, False),
        "iteration_timeout": (_NUM, 900, False),
        "verify": ((bool,), True, False),
        "min_improvement": (_NUM, 0.0, False),
        "repeats": ((int,), 1, False),
    },
}


@dataclass(frozen=True)
class HostService:
    command: list[str]
    port: int


@dataclass(frozen=True)
class RunDefaults:
    max_iterations: int = 50
    max_hours: float = 8
    max_cost: float = 0
    target_score: float | None = None
    plateau_threshold: int = 10
    max_restarts: int = 3
    iteration_timeout: float = 900
    verify: bool = True
    min_improvement: float = 0.0
    repeats: int = 1


@dataclass(frozen=True)
class LabConfig:
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
    run: RunDefaults = field(default_factory=RunDefaults)

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


def load(path: Path) -> LabConfig:
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise ArlError(f"cannot read {path}: {e.strerror}")
    except UnicodeDecodeError:
        raise ArlError(f"{path}: not UTF-8 text")
    except tomllib.TOMLDecodeError as e:
        raise ArlError(f"{path}: invalid TOML{_toml_place(path, str(e))}: {e}")
    tables = _validate(path, raw)
    root = path.parent.resolve()
    lab, be, ag, sb, rn = (tables[t] for t in ("lab", "backend", "agent", "sandbox", "run"))

    def where(table: str, key: str) -> str:
        return f"{path}: [{table}] {key}"

    if lab["direction"] not in ("minimize", "maximize"):
        raise ArlError(f'{where("lab", "direction")} must be "minimize" or "maximize", not {lab["direction"]!r}')
    for table, key in _NUMBERS:
        value = tables[table][key]
        if isinstance(value, float) and not math.isfinite(value):
            raise ArlError(f"{where(table, key)} must be a finite number, not {value}")
    if be["eval_timeout"] <= 0:
        raise ArlError(f"{where('backend', 'eval_timeout')} must be a positive number of seconds")
    for key in ("max_iterations", "plateau_threshold", "max_restarts", "repeats"):
        if rn[key] < (1 if key == "repeats" else 0):
            raise ArlError(f"{where('run', key)} must not be negative" + (" or zero" if key == "repeats" else ""))
    for key in ("max_hours", "max_cost", "iteration_timeout", "min_improvement"):
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
            f"module:Class{_hint(kind, AGENT_KINDS)}"
        )
    pipeline = (root / lab["pipeline_dir"]).resolve()
    if pipeline == root or root.is_relative_to(pipeline) or (root / be["module"]).resolve().is_relative_to(pipeline):
        raise ArlError(
            f"{where('lab', 'pipeline_dir')} must be a folder inside the lab that holds neither lab.toml "
            f"nor the backend (the agent may change everything in it)"
        )
    agent_cmd = ag["command"]
    agent_cmd = agent_cmd.split() if isinstance(agent_cmd, str) else agent_cmd
    _str_list(agent_cmd, where("agent", "command"))
    _str_list(sb["env"], where("sandbox", "env"))
    service = None
    if "backend.host_service" in tables:
        hs = tables["backend.host_service"]
        cmd = hs["command"]
        cmd = cmd.split() if isinstance(cmd, str) else cmd
        _str_list(cmd, where("backend.host_service", "command"))
        if not cmd:
            raise ArlError(f"{where('backend.host_service', 'command')} is empty")
        if not 0 < hs["port"] < 65536:
            raise ArlError(f"{where('backend.host_service', 'port')} must be between 1 and 65535")
        service = HostService(command=cmd, port=hs["port"])
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
        run=RunDefaults(
            max_iterations=rn["max_iterations"],
            max_hours=float(rn["max_hours"]),
            max_cost=float(rn["max_cost"]),
            target_score=target,
            plateau_threshold=rn["plateau_threshold"],
            max_restarts=rn["max_restarts"],
            iteration_timeout=float(rn["iteration_timeout"]),
            verify=rn["verify"],
            min_improvement=float(rn["min_improvement"]),
            repeats=rn["repeats"],
        ),
    )


def _under(root: Path, rel: str) -> Path:
    """A path from lab.toml: relative to the lab's folder (absolute ones stay), `..` folded, links untouched."""
    return Path(os.path.normpath(root / Path(rel).expanduser()))


def _str_list(value: list[Any], where: str) -> None:
    if not all(isinstance(v, str) for v in value):
        raise ArlError(f"{where} must be a list of strings")


def _validate(path: Path, raw: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Check every table and key against SCHEMA; fill defaults. Errors name file, table and key."""
    out: dict[str, dict[str, Any]] = {}
    flat: dict[str, Any] = {}
    for name, value in raw.items():
        if isinstance(value, list) and name in SCHEMA:
            raise ArlError(f"{path}: [{name}] must be one table, not an array of tables ([[{name}]])")
        if not isinstance(value, dict):
            raise ArlError(f"{path}: top-level key {name!r} must be inside a table such as [lab]")
        if name == "backend" and "host_service" in value and not isinstance(value["host_service"], dict):
            raise ArlError(f"{path}: [backend] host_service must be a table ([backend.host_service])")
        if name == "backend" and isinstance(value.get("host_service"), dict):
            value = dict(value)
            flat["backend.host_service"] = value.pop("host_service")
        flat[name] = value
    for table, values in flat.items():
        if table not in SCHEMA:
            raise ArlError(f"{path}: unknown table [{table}]{_hint(table, SCHEMA)}")
        spec = SCHEMA[table]
        for key, value in values.items():
            if key not in spec:
                raise ArlError(f"{path}: [{table}] unknown key {key!r}{_hint(key, spec)}")
            types = spec[key][0]
            if isinstance(value, bool) and bool not in types or not isinstance(value, types):
                want = " or ".join(
                    dict.fromkeys(_TYPE_NAMES[float if t is int and float in types else t] for t in types)
                )
                raise ArlError(
                    f"{path}: [{table}] {key} must be {want}, not {_TYPE_NAMES.get(type(value), type(value).__name__)}"
                )
    for table, spec in SCHEMA.items():
        if table not in flat and table == "backend.host_service":
            continue
        values = flat.get(table, {})
        filled: dict[str, Any] = {}
        for key, (_types, default, required) in spec.items():
            if key in values:
                filled[key] = values[key]
            elif required:
                raise ArlError(f"{path}: [{table}] {key} is required")
            else:
                filled[key] = list(default) if isinstance(default, list) else default
        out[table] = filled
    return out


_TYPE_NAMES = {
    str: "a string",
    int: "an integer",
    float: "a number",
    bool: "true or false",
    list: "a list",
    dict: "a table",
}


AGENT_KINDS = ("claude", "codex", "command", "offline")
_NUMBERS = [(t, k) for t, keys in SCHEMA.items() for k, (types, _, _) in keys.items() if float in types]


def _toml_place(path: Path, message: str) -> str:
    """tomllib names a line; say which table and key that line is, as every other lab.toml error does."""
    m = re.search(r"at line (\d+)", message)
    if not m:
        return ""
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    n = int(m.group(1))
    table = next((ln.strip() for ln in reversed(lines[: n - 1]) if ln.strip().startswith("[")), "")
    key = lines[n - 1].split("=")[0].strip() if 0 < n <= len(lines) and "=" in lines[n - 1] else ""
    return f" in {table or 'the top level'}{' at key ' + key if key else ''}"


def _hint(word: str, choices: Any) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else f" (known: {', '.join(choices)})"


def load_lab(explicit: str | None = None) -> LabConfig:
    return load(find_lab(explicit=explicit))
