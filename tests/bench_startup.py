"""The start-up table of `make bench`: what one short command costs, next to the interpreter's own start.

Each command runs `reps` times, round-robin with the others (so a burst of load on the machine hits them all
alike), after one run each to warm the page cache, .pyc files and arl's parsed-history cache. Every figure is a
median in ms and its ratio to `python -c pass` (the same interpreter as `arl`) measured in the same run."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable
from pathlib import Path

from . import bench_labs as L
from .bench_stats import Figure, figure, percentile

SECTION = "4. start-up"
BASE = "python -c pass"


def _commands(lab: Path, rows: int) -> list[tuple[str, list[str], float | None, Callable[[], None] | None]]:
    """(name, command line, goal as a multiple of `python -c pass`, what to do before each run)."""
    cache = lab / ".arl" / "cache"

    def no_cache() -> None:
        shutil.rmtree(cache, ignore_errors=True)

    many = f"{rows:,} rows"
    return [
        (BASE, [sys.executable, "-c", "pass"], None, None),
        ("arl --help", L.arl("--help"), None, None),
        ("arl eval, no-op backend", L.arl("eval", "--data", "data", "--json"), 5.0, None),
        (f"arl results --format json, {many}", L.arl("results", "--format", "json"), 8.0, None),
        ("  the same, parsed (no cache)", L.arl("results", "--format", "json"), None, no_cache),
        (f"arl results --last 20, {many}", L.arl("results", "--last", "20"), 5.0, None),
        (f"arl results (table), {many}", L.arl("results"), None, None),
        ("arl diagnose, no-op backend", L.arl("diagnose", "--data", "data"), 6.0, None),
    ]


def startup(scratch: L.Scratch, reps: int, rows: int, say: Callable[[str], None]) -> tuple[list[Figure], dict]:
    lab = L.knob_lab(scratch, "startup", backend=L.NOOP_BACKEND)
    say(f"start-up: seeding {rows} results rows")
    L.seed_history(lab, rows, refs=False)
    commands = _commands(lab, rows)
    say(f"start-up: {len(commands)} commands, {reps} runs each, round-robin")
    samples: dict[str, list[float]] = {name: [] for name, _, _, _ in commands}
    for _name, cmd, _, before in commands:  # warm-up, not counted
        if before:
            before()
        L.timed(cmd, lab)
    for _ in range(reps):
        for name, cmd, _, before in commands:
            if before:
                before()
            samples[name].append(L.timed(cmd, lab) * 1000)
    base = percentile(samples[BASE], 0.5)
    figs = []
    for name, _, goal, _ in commands:
        f = figure(SECTION, name, "ms", samples[name])
        ratio = f.median / base
        f.note = "the unit of the ratios" if name == BASE else f"{ratio:.1f}× python -c pass"
        if goal is not None:
            f.goal, f.met = f"≤ {goal:g}× ({goal * base:.0f} ms)", ratio <= goal
        figs.append(f)
    return figs, {"samples_ms": samples, "base_ms": base, "rows": rows}
