"""The start-up table of `make bench`: what one short command costs, next to autoresearch-lab 0.2.6 on the same lab.

Both tools run from regular installs, each in a virtualenv of its own made here: arl from a wheel of this checkout,
autoresearch-lab from PyPI (an editable install adds a path hook and a larger sys.path to every start). They run on
the same lab, a lab.toml and a backend both read, with a long history in arl's format, in two states: a fresh clone
(no `.arl/`, removed before each run) and a warm one (the `.arl/` a run leaves). Every command runs `reps` times per
state and tool, round-robin, the tool that goes first alternating (so a burst of load on the machine hits them all
alike), after one run each to warm the page cache and .pyc files. Every figure is a median in ms; the goal is arl at
most 0.8x autoresearch-lab's median measured in the same run."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from . import bench_labs as L
from .bench_stats import Figure, figure, percentile

SECTION = "4. start-up"
ROOT = Path(__file__).resolve().parent.parent
AUTORESEARCH_LAB = "autoresearch-lab==0.2.6"
GOAL = 0.8  # arl's median at most this multiple of autoresearch-lab's

# A lab.toml both read: autoresearch-lab refuses keys it does not know, arl fills in its defaults.
SHARED_TOML = """[lab]
name = "{name}"
pipeline_dir = "pipeline"

[backend]
module = "backend.py"
class = "PipelineBackend"
"""
# A backend both load: each subclasses its own tool's base class (the one whose package is already imported).
SHARED_BACKEND = '''"""Bench backend: does nothing, returns at once; for arl and for autoresearch-lab alike."""

import sys

if "autoresearch_lab" in sys.modules:
    from autoresearch_lab.harness.backend import EvalBackend, EvalResult
else:
    from arl import EvalBackend, EvalResult


class PipelineBackend(EvalBackend):
    def evaluate(self, pipeline_dir, data_dir, sample_ids=None):
        return EvalResult(score=0.0)
'''


def _clean_env(venv: Path) -> dict[str, str]:
    """The venv first on PATH, and nothing that would let it see the checkout or the dev venv."""
    drop = ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME", "ARL_LAB", "PYTHONDONTWRITEBYTECODE")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    return {**env, "PATH": f"{venv / 'bin'}{os.pathsep}/usr/bin{os.pathsep}/bin", "ARL_QUIET": "1"}


def _run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> None:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")


def _venv(scratch: L.Scratch, name: str, *install: str) -> Path:
    venv = scratch.root / name
    _run([sys.executable, "-m", "venv", str(venv)], scratch.root)
    _run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", *install], scratch.root, _clean_env(venv))
    return venv


def install(scratch: L.Scratch, say: Callable[[str], None]) -> tuple[Path, Path | None]:
    """arl from a wheel of this checkout, and autoresearch-lab (None when it cannot be installed: no network)."""
    say("start-up: building arl's wheel and installing it in a virtualenv of its own")
    dist = scratch.root / "dist"
    _run([sys.executable, "-m", "build", "--wheel", "--outdir", str(dist), str(ROOT)], scratch.root)
    arl = _venv(scratch, "venv-arl", str(next(dist.glob("arl_research-*.whl"))))
    say(f"start-up: installing {AUTORESEARCH_LAB} in another")
    try:
        other = _venv(scratch, "venv-autoresearch-lab", AUTORESEARCH_LAB)
    except (RuntimeError, subprocess.TimeoutExpired) as e:
        say(f"start-up: no {AUTORESEARCH_LAB} ({str(e).splitlines()[0]}): arl's figures only")
        other = None
    return arl, other


def shared_lab(scratch: L.Scratch, rows: int) -> tuple[Path, Path]:
    """The warm lab (after a run: `.arl/` holds its state) and a fresh clone of it (no `.arl/`)."""
    warm = scratch.repo("startup")
    (warm / "lab.toml").write_text(SHARED_TOML.format(name=f"bench-startup-{os.getpid()}"))
    (warm / "backend.py").write_text(SHARED_BACKEND)
    (warm / "pipeline").mkdir()
    (warm / "pipeline" / "knob.py").write_text(L.KNOB_PIPELINE)
    (warm / "data").mkdir()
    (warm / "data" / "README").write_text("the bench backend reads no data\n")
    (warm / "AGENT.md").write_text("Tune X.\n")
    (warm / ".gitignore").write_text(".arl/\n__pycache__/\n.last_eval.json\n")
    L.commit_all(warm)
    L.seed_history(warm, rows, refs=False)
    # and the run's log, its start and its end, as a run leaves it
    events = [{"event": "start", "run": 1, "pid": os.getpid()}, {"event": "end", "run": 1, "reason": "max_iterations"}]
    (warm / ".arl" / "runs.jsonl").write_text("".join(json.dumps({"time": time.time(), **e}) + "\n" for e in events))
    fresh = scratch.root / "startup-clone"
    _run(["git", "clone", "-q", str(warm), str(fresh)], scratch.root)
    return warm, fresh


def _commands(rows: int) -> list[tuple[str, list[str], list[str]]]:
    """(name, arl's arguments, autoresearch-lab's): the same request in each tool's spelling."""
    many = f"{rows:,} rows"
    return [
        ("--help", ["--help"], ["--help"]),
        ("eval, no-op backend", ["eval", "--data", "data", "--json"], ["eval", "--data", "data"]),
        (f"results --format json, {many}", ["results", "--format", "json"], ["results", "--format", "json"]),
        (f"results --last 20, {many}", ["results", "--last", "20"], ["results", "--last", "20"]),
        (f"results (table), {many}", ["results"], ["results"]),
        ("diagnose, no-op backend", ["diagnose", "--data", "data"], ["diagnose", "--data", "data"]),
    ]


def _timed(cmd: list[str], lab: Path, env: dict[str, str], fresh: bool) -> float:
    if fresh:  # a fresh clone: nothing any earlier run left
        for left in (".arl", "__pycache__"):
            shutil.rmtree(lab / left, ignore_errors=True)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=lab, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=300)
    dt = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}: {proc.stderr.decode()[-2000:]}")
    return dt * 1000


def startup(scratch: L.Scratch, reps: int, rows: int, say: Callable[[str], None]) -> tuple[list[Figure], dict]:
    arl_venv, other_venv = install(scratch, say)
    say(f"start-up: a shared lab with {rows} results rows, warm and as a fresh clone")
    warm, fresh = shared_lab(scratch, rows)
    tools = {"arl": arl_venv} | ({"autoresearch-lab": other_venv} if other_venv else {})
    envs = {tool: _clean_env(venv) for tool, venv in tools.items()}
    states = {"fresh clone": fresh, "warm": warm}
    runs = [("python -c pass", "warm", "arl", [str(arl_venv / "bin" / "python"), "-c", "pass"])]
    for name, mine, theirs in _commands(rows):
        for state in states:
            for tool, venv in tools.items():
                runs.append((name, state, tool, [str(venv / "bin" / "arl"), *(mine if tool == "arl" else theirs)]))
    say(f"start-up: {len(runs)} commands, {reps} runs each, round-robin")
    samples: dict[tuple[str, str, str], list[float]] = {(n, s, t): [] for n, s, t, _ in runs}
    groups = [runs[i : i + len(tools)] for i in range(1, len(runs), len(tools))]  # one command, one state, each tool
    for rep in range(reps + 1):  # the first round warms up, not counted
        # the tools take turns going first, so neither always runs just after the other
        order = runs[:1] + [r for group in groups for r in (group if rep % 2 == 0 else group[::-1])]
        for name, state, tool, cmd in order:
            dt = _timed(cmd, states[state], envs[tool], fresh=state == "fresh clone")
            if rep:
                samples[(name, state, tool)].append(dt)
    base = percentile(samples[("python -c pass", "warm", "arl")], 0.5)
    figs = [figure(SECTION, "python -c pass (arl's venv)", "ms", samples[("python -c pass", "warm", "arl")])]
    for name, _, _ in _commands(rows):
        for state in states:
            f = figure(SECTION, f"arl {name}, {state}", "ms", samples[(name, state, "arl")])
            theirs = samples.get((name, state, "autoresearch-lab"))
            f.note = f"{f.median / base:.1f}× python -c pass"
            if theirs:
                other = percentile(theirs, 0.5)
                f.goal, f.met = f"≤ {GOAL:g}× autoresearch-lab ({GOAL * other:.0f} ms)", f.median <= GOAL * other
                f.note = f"{f.median / other:.2f}× autoresearch-lab's {other:.0f} ms; " + f.note
            figs.append(f)
    raw = {"samples_ms": {" | ".join(k): v for k, v in samples.items()}, "base_ms": base, "rows": rows}
    return figs, raw
