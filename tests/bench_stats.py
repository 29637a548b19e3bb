"""Figures for `make bench`: median and spread, the machine they came from, the one table."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from typing import Any


def percentile(values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    xs = sorted(values)
    if not xs:
        return float("nan")
    pos = (len(xs) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


@dataclass
class Figure:
    """One row of the table: a median and its spread over `n` samples, and the goal it is held to."""

    section: str
    name: str
    unit: str  # "ms", "/h", "x", "s"
    median: float
    low: float  # p10 (or min when n < 10)
    high: float  # p90 (or max when n < 10)
    n: int
    spread: str  # "p10-p90" or "min-max"
    goal: str = ""
    met: bool | None = None
    note: str = ""
    samples: list[float] = field(default_factory=list)


def figure(section: str, name: str, unit: str, samples: list[float], scale: float = 1.0, **kw: Any) -> Figure:
    xs = [x * scale for x in samples]
    if not xs:
        return Figure(section, name, unit, float("nan"), float("nan"), float("nan"), 0, "", **kw)
    wide = len(xs) >= 10
    low, high = (percentile(xs, 0.1), percentile(xs, 0.9)) if wide else (min(xs), max(xs))
    return Figure(
        section,
        name,
        unit,
        percentile(xs, 0.5),
        low,
        high,
        len(xs),
        "p10-p90" if wide else "min-max",
        samples=[round(x, 6) for x in xs],
        **kw,
    )


def _num(v: float, unit: str) -> str:
    if v != v:  # nan
        return "-"
    if unit == "/h":
        return f"{v:,.0f}"
    if unit == "x":
        return f"{v:.2f}"
    if unit == "s":
        return f"{v:.2f}"
    return f"{v:.1f}" if abs(v) < 100 else f"{v:.0f}"


def table(figures: list[Figure]) -> str:
    from tabulate import tabulate

    lines = []
    section = None
    for f in figures:
        head = f.section if f.section != section else ""
        section = f.section
        met = "" if f.met is None else ("yes" if f.met else "NO")
        spread = f"{_num(f.low, f.unit)} – {_num(f.high, f.unit)} ({f.spread})" if f.n > 1 else ""
        lines.append([head, f.name, f"{_num(f.median, f.unit)} {f.unit}", spread, f.n, f.goal, met, f.note])
    return tabulate(lines, headers=["", "figure", "median", "spread", "n", "goal", "met", "note"], tablefmt="simple")


def as_json(figures: list[Figure]) -> list[dict[str, Any]]:
    return [asdict(f) for f in figures]


def _out(cmd: list[str]) -> str:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return ""


def machine() -> dict[str, Any]:
    """What the figures came from: cores, RAM, CPU, kernel, Docker and its storage driver, Python, git."""
    mem_kb = 0
    cpu = platform.processor()
    try:
        with open("/proc/meminfo") as f:
            mem_kb = int(next(ln for ln in f if ln.startswith("MemTotal")).split()[1])
        with open("/proc/cpuinfo") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), cpu)
    except (OSError, StopIteration):
        pass
    docker = _out(["docker", "info", "--format", "{{.ServerVersion}}|{{.Driver}}|{{.CgroupVersion}}"]).split("|")
    return {
        "cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "ram_gb": round(mem_kb / 1024 / 1024, 1),
        "cpu": cpu,
        "kernel": platform.release(),
        "os": _os_name(),
        "docker": docker[0] if docker and docker[0] else "?",
        "storage_driver": docker[1] if len(docker) > 1 else "?",
        "cgroup": docker[2] if len(docker) > 2 else "?",
        "python": platform.python_version(),
        "python_path": sys.executable,
        "git": _out(["git", "--version"]).removeprefix("git version "),
    }


def _os_name() -> str:
    try:
        with open("/etc/os-release") as f:
            for ln in f:
                if ln.startswith("PRETTY_NAME="):
                    return ln.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return platform.system()


def describe(m: dict[str, Any]) -> str:
    return (
        f"{m['cores']} cores ({m['cpu']}), {m['ram_gb']} GB RAM, {m['os']}, kernel {m['kernel']}, "
        f"Docker {m['docker']} ({m['storage_driver']}, cgroup v{m['cgroup']}), Python {m['python']}, git {m['git']}"
    )
