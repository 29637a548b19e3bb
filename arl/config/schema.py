"""The shape of lab.toml: every table and key with its types and default, and the checks that name file,
table and key in every error."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from arl.errors import ArlError

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
        "isolation": ((str,), "fork", False),
        "max_output_mb": (_NUM, 100, False),
        "files": ((list,), ["*.json", "*.yaml", "*.yml", "*.toml", "*.txt", "*.csv"], False),
    },
    "backend.host_service": {
        "command": ((str, list), None, True),
        "port": ((int,), None, True),
    },
    "agent": {
        "kind": ((str,), "claude", False),
        "model": ((str,), "", False),
        "command": ((list, str), [], False),
        "allow_web": ((bool,), False, False),
        "models": ((list,), [], False),
    },
    "sandbox": {
        "dockerfile": ((str,), "", False),
        "build_context": ((str,), ".", False),
        "memory": ((str,), "", False),
        "cpus": ((str, int, float), "", False),
        "pids_limit": ((int,), 512, False),
        "gpus": ((str,), "", False),
        "env": ((list,), [], False),
        "max_depth": ((int,), 64, False),
        "max_files": ((int,), 10_000, False),
        "max_workspace_mb": (_NUM, 200, False),
        "max_notes_kb": (_NUM, 256, False),
        "network": ((str,), "", False),
        "slot_gpus": ((list,), [], False),
    },
    "engine": {
        "kind": ((str,), "local", False),
        "runtime": ((str,), "docker", False),
        "partition": ((str,), "", False),
        "account": ((str,), "", False),
        "time_limit": ((str,), "", False),
        "gres": ((str,), "", False),
        "sbatch_args": ((list,), [], False),
        "gpu_mode": ((str,), "docker", False),
        "broker": ((str,), "job", False),
        "broker_address": ((str,), "", False),
    },
    "run": {
        "max_iterations": ((int,), 50, False),
        "max_hours": (_NUM, 8, False),
        "max_cost": (_NUM, 0, False),
        "target_score": ((str, int, float), "", False),
        "plateau_threshold": ((int,), 10, False),
        "max_restarts": ((int,), 3, False),
        "max_api_outage_minutes": (_NUM, 60, False),
        "iteration_timeout": (_NUM, 900, False),
        "verify": ((bool,), True, False),
        "min_improvement": (_NUM, 0.0, False),
        "repeats": ((int,), 1, False),
        "agents": ((int,), 1, False),
        "max_parallel_verifications": ((int,), 0, False),
    },
}


def str_list(value: list[Any], where: str) -> None:
    if not all(isinstance(v, str) for v in value):
        raise ArlError(f"{where} must be a list of strings")


def validate(path: Path, raw: dict[str, Any]) -> dict[str, dict[str, Any]]:
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
            raise ArlError(f"{path}: unknown table [{table}]{hint(table, SCHEMA)}")
        spec = SCHEMA[table]
        for key, value in values.items():
            if key not in spec:
                raise ArlError(f"{path}: [{table}] unknown key {key!r}{hint(key, spec)}")
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
NUMBERS = [(t, k) for t, keys in SCHEMA.items() for k, (types, _, _) in keys.items() if float in types]


def toml_place(path: Path, message: str) -> str:
    """tomllib names a line; say which table and key that line is, as every other lab.toml error does."""
    m = re.search(r"at line (\d+)", message)
    if not m:
        return ""
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    n = int(m.group(1))
    table = next((ln.strip() for ln in reversed(lines[: n - 1]) if ln.strip().startswith("[")), "")
    key = lines[n - 1].split("=")[0].strip() if 0 < n <= len(lines) and "=" in lines[n - 1] else ""
    return f" in {table or 'the top level'}{' at key ' + key if key else ''}"


def hint(word: str, choices: Any) -> str:
    import difflib  # only for an error message

    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else f" (known: {', '.join(choices)})"
