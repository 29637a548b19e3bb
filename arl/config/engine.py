"""`[engine]` of lab.toml: where the slots' agents run (this machine's Docker engine, or SLURM jobs)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, NamedTuple

from arl.errors import ArlError

if TYPE_CHECKING:
    from collections.abc import Callable

KINDS = ("local", "slurm")
RUNTIMES = ("docker", "podman")
# How a slot's container gets the GPUs its job was given: docker's --gpus (the NVIDIA container toolkit), or only
# NVIDIA_VISIBLE_DEVICES/CUDA_VISIBLE_DEVICES in its environment (a runtime that maps devices from those, and the
# test cluster, whose GPUs are placeholder files).
GPU_MODES = ("docker", "env")
# Where a SLURM slot's API broker runs: in its job (the nodes reach the API), or on the submitting host, with a relay
# in the job (compute nodes without outbound network).
BROKER_PLACES = ("job", "submit-host")


class EngineSettings(NamedTuple):
    kind: str = "local"
    runtime: str = "docker"
    partition: str = ""
    account: str = ""
    time_limit: str = ""  # SLURM's format (minutes, MM:SS, HH:MM:SS, D-HH:MM:SS); empty: from max_hours
    gres: str = ""  # per slot, e.g. "gpu:1"
    sbatch_args: tuple[str, ...] = ()
    gpu_mode: str = "docker"
    broker: str = "job"
    broker_address: str = ""  # HOST[:PORT] the relays reach the submit host at; empty: this host's name, resolved


def engine_settings(table: dict[str, Any], where: Callable[[str], str]) -> EngineSettings:
    for key, allowed in (("kind", KINDS), ("runtime", RUNTIMES), ("gpu_mode", GPU_MODES), ("broker", BROKER_PLACES)):
        if table[key] not in allowed:
            raise ArlError(f"{where(key)} must be {' or '.join(repr(a) for a in allowed)}, not {table[key]!r}")
    if not all(isinstance(a, str) for a in table["sbatch_args"]):
        raise ArlError(f"{where('sbatch_args')} must be a list of strings")
    if table["time_limit"] and time_limit_minutes(table["time_limit"]) is None:
        raise ArlError(f"{where('time_limit')} is {table['time_limit']!r}: SLURM's form, e.g. 90, 8:00:00, 1-00:00:00")
    if table["broker_address"] and address_parts(table["broker_address"]) is None:
        raise ArlError(
            f"{where('broker_address')} is {table['broker_address']!r}: HOST or HOST:PORT, e.g. 10.1.0.5:7000"
        )
    return EngineSettings(
        kind=table["kind"],
        runtime=table["runtime"],
        partition=table["partition"],
        account=table["account"],
        time_limit=table["time_limit"],
        gres=table["gres"],
        sbatch_args=tuple(table["sbatch_args"]),
        gpu_mode=table["gpu_mode"],
        broker=table["broker"],
        broker_address=table["broker_address"],
    )


def address_parts(text: str) -> tuple[str, int] | None:
    """`HOST` or `HOST:PORT` (port 0 or none: any free port); None: not that form."""
    m = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9.\-]*)(?::(\d{1,5}))?", text.strip())
    if not m or int(m.group(2) or 0) > 65535:
        return None
    return m.group(1), int(m.group(2) or 0)


def time_limit_minutes(text: str) -> float | None:
    """SLURM's time formats as minutes: M, M:S, H:M:S, D-H, D-H:M, D-H:M:S. None: not one of them."""
    m = re.fullmatch(r"(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?", text.strip())
    if not m:
        return None
    days, a, b, c = (int(g) if g else None for g in m.groups())
    if days is not None:  # D-H[:M[:S]]
        return days * 1440 + (a or 0) * 60 + (b or 0) + (c or 0) / 60
    if c is not None:  # H:M:S
        return (a or 0) * 60 + (b or 0) + c / 60
    if b is not None:  # M:S
        return (a or 0) + b / 60
    return float(a or 0)


def engine_kind(lab: EngineSettings, settings: Any) -> str:
    """The run's engine: its settings hold `--engine` when one was given, else lab.toml's [engine] kind."""
    return str((settings or {}).get("engine") or lab.kind)
