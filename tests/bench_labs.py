"""Labs for `make bench`: scratch git repositories, a near-instant lab, a long synthetic history, loop runs.

Every lab gets a name of its own (`bench-<what>-<pid>`), so that the bench shares no container name, image tag or
ref name with another arl run on the same engine (the example lab is renamed, nothing else of it changes)."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BIN = Path(sys.executable).parent

# The pipeline is one constant; the score is how far it is from 3 (lower is better). Evaluation is instant.
KNOB_BACKEND = '''"""Bench backend: near-instant, the score computed from the one constant in the pipeline."""

from __future__ import annotations

import re
from pathlib import Path

from arl import EvalBackend, EvalResult


class PipelineBackend(EvalBackend):
    def evaluate(self, pipeline_dir: Path, data_dir: Path, sample_ids: list[str] | None = None) -> EvalResult:
        text = (pipeline_dir / "knob.py").read_text()
        found = re.search(r"^X\\s*=\\s*(\\S+)", text, re.M)
        if found is None:
            raise ValueError("no `X = number` line in knob.py")
        x = float(found.group(1))
        return EvalResult(score=abs(x - 3.0), metrics={"x": x})
'''
# The same score as a split backend: the pipeline's constant read by the untrusted part, scored by the trusted one.
SPLIT_KNOB_BACKEND = '''"""Bench backend, split: the run phase reads the constant, the score phase scores it."""

from __future__ import annotations

import re
from pathlib import Path

from arl import SplitBackend


class PipelineBackend(SplitBackend):
    def samples(self, data_dir: Path) -> list[str]:
        return ["knob"]

    def inputs(self, data_dir: Path, sample_id: str) -> None:
        return None

    def predict(self, pipeline_dir: Path, inputs: None) -> float:
        found = re.search(r"^X\\s*=\\s*(\\S+)", (pipeline_dir / "knob.py").read_text(), re.M)
        if found is None:
            raise ValueError("no `X = number` line in knob.py")
        return float(found.group(1))

    def score(self, data_dir: Path, sample_id: str, output: float) -> float:
        return abs(float(output) - 3.0)
'''
KNOB_PIPELINE = '"""The bench pipeline: one constant the offline agent tunes."""\n\nX = 40.0\n'
NOOP_BACKEND = '''"""Bench backend: does nothing, returns at once."""

from __future__ import annotations

from pathlib import Path

from arl import EvalBackend, EvalResult


class PipelineBackend(EvalBackend):
    def evaluate(self, pipeline_dir: Path, data_dir: Path, sample_ids: list[str] | None = None) -> EvalResult:
        return EvalResult(score=0.0)
'''


def env() -> dict[str, str]:
    """The environment of every arl command the bench runs: quiet command lines, a debootstrap base image."""
    # without PYTHONDONTWRITEBYTECODE (set in some shells and CI): a user's arl starts from its .pyc files
    inherited = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    return {
        **inherited,
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "ARL_QUIET": "1",
        "ARL_BASE_FROM": "debootstrap",
    }


def sh(cmd: list[str], cwd: Path | None = None, timeout: float = 900, check: bool = True) -> str:
    proc = subprocess.run(cmd, cwd=cwd, env=env(), capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc.stdout


def timed(cmd: list[str], cwd: Path, timeout: float = 900, ok: tuple[int, ...] = (0,)) -> float:
    """Wall time of one command, its output discarded (a pipe, as in a script)."""
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=timeout)
    dt = time.perf_counter() - t0
    if proc.returncode not in ok:
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}: {proc.stderr.decode()[-2000:]}")
    return dt


def arl(*args: str) -> list[str]:
    return [str(BIN / "arl"), *args]


def step(*args: str) -> list[str]:
    return [str(BIN / "arl-step"), *args]


class Scratch:
    """A temporary folder for the bench's repositories; removed at the end unless kept."""

    def __init__(self, keep: bool = False) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="arl-bench-"))
        self.keep = keep
        self.labs: list[Path] = []

    def repo(self, name: str) -> Path:
        path = self.root / name
        path.mkdir(parents=True)
        for args in (
            ["init", "-q", "-b", "main"],
            ["config", "user.email", "bench@example.com"],
            ["config", "user.name", "Bench"],
        ):
            sh(["git", "-C", str(path), *args])
        return path

    def close(self) -> None:
        for lab in self.labs:
            remove_containers(lab)
        if not self.keep:
            shutil.rmtree(self.root, ignore_errors=True)


def commit_all(lab: Path, message: str = "lab") -> None:
    sh(["git", "-C", str(lab), "add", "-A"])
    sh(["git", "-C", str(lab), "commit", "-qm", message])


def knob_lab(scratch: Scratch, what: str, backend: str = KNOB_BACKEND) -> Path:
    """A lab whose evaluation is near-instant: `arl init`, then the one-constant pipeline and its backend."""
    lab = scratch.repo(what)
    sh(arl("init", "--name", f"bench-{what}-{os.getpid()}"), cwd=lab)
    (lab / "backend.py").write_text(backend)
    (lab / "pipeline").mkdir(exist_ok=True)
    (lab / "pipeline" / "knob.py").write_text(KNOB_PIPELINE)
    (lab / "data").mkdir()
    (lab / "data" / "README").write_text("the bench backend reads no data\n")
    commit_all(lab)
    scratch.labs.append(lab)
    return lab


def example_lab(scratch: Scratch, what: str) -> Path:
    """`arl init --example curve-fit`, renamed so that it cannot collide with another curve-fit run's containers."""
    lab = scratch.repo(what)
    sh(arl("init", "--example", "curve-fit"), cwd=lab)
    toml = lab / "lab.toml"
    toml.write_text(toml.read_text().replace('name = "curve-fit"', f'name = "bench-{what}-{os.getpid()}"', 1))
    commit_all(lab)
    scratch.labs.append(lab)
    return lab


def seed_history(lab: Path, count: int, run: int = 1, outcome: str = "discard", refs: bool = True) -> None:
    """`count` prior experiments without running them: a baseline row (the real score of the pipeline), `count`
    worse rows, and one `refs/arl/<lab>/experiments/<id>` per row, all pointing at HEAD (`git update-ref --stdin`).

    Rows are worse than the baseline, so the best stays the baseline and a run with the same seed proposes and
    decides exactly what it would in a fresh lab: only the length of the history differs."""
    from arl.config.config import load
    from arl.git.gitops import ref_name
    from arl.history import results

    cfg = load(lab / "lab.toml")
    base = json.loads(sh(arl("eval", "--data", "data", "--json"), cwd=lab).strip().splitlines()[-1])["score"]
    head = sh(["git", "-C", str(lab), "rev-parse", "HEAD"]).strip()
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())

    def row(i: int) -> dict[str, Any]:
        first = i == 0
        return {
            "id": i,
            "run": run,
            "time": stamp,
            "outcome": "baseline" if first else outcome,
            "score": base if first else base + 1.0 + i * 1e-3,
            "verified_score": base if first else None,
            "best": base,
            "cost_usd": 0.0,
            "commit": head,
            "agent": "offline",
            "notes": "baseline" if first else f"synthetic experiment {i}: X moved, no better",
            "metrics": {"x": 40.0} if first else {"x": 40.0 + i, "verdict_seq": i},
        }

    with open(cfg.results_file, "w") as f:
        f.write(results.header_line() + "".join(results.format_row(row(i)) for i in range(count + 1)))
    if refs:
        lines = "".join(f"update {ref_name(cfg, i)} {head}\n" for i in range(count + 1))
        proc = subprocess.run(["git", "-C", str(lab), "update-ref", "--stdin"], input=lines, text=True, env=env())
        if proc.returncode != 0:
            raise RuntimeError("git update-ref --stdin failed")
    commit_all(lab, f"{count} prior experiments")
    # The loop's state carries the verdict sequence across runs; a new lab starts after the seeded ones.
    state = lab / ".arl" / "state.json"
    state.parent.mkdir(exist_ok=True)
    state.write_text(json.dumps({"active": False, "run": run, "seq": count}))


def run_loop(lab: Path, n: int, *, verify: bool, seed: int, make: bool = False) -> tuple[float, int]:
    """The loop with the offline agent for `n` experiments; returns (wall seconds, run number)."""
    flags = ["--agent", "offline", "--max-iterations", str(n), "--plateau-threshold", "0", "--seed", str(seed)]
    flags += [] if verify else ["--no-verify"]
    if make:
        cmd = ["make", "-s", "research", "DATA=data", f"ARGS={' '.join(flags)}", f"ARL={BIN / 'arl'}"]
        cmd.append(f"STEP={BIN / 'arl-step'}")
    else:
        cmd = arl("run", "--data", "data", *flags)
    t0 = time.perf_counter()
    try:
        sh(cmd, cwd=lab, timeout=60 + n * 30)
    finally:
        remove_containers(lab)
    wall = time.perf_counter() - t0
    return wall, max(int(e.get("run", 0)) for e in events(lab, "start"))


def events(lab: Path, kind: str, run: int | None = None) -> list[dict[str, Any]]:
    path = lab / ".arl" / "runs.jsonl"
    out = []
    for line in path.read_text().splitlines() if path.exists() else []:
        try:
            e = json.loads(line)
        except ValueError:
            continue
        if e.get("event") == kind and (run is None or e.get("run") == run):
            out.append(e)
    return out


def outcomes(lab: Path, run: int) -> dict[int, str]:
    """Experiment id -> outcome for one run, from results.tsv."""
    with open(lab / "results.tsv", newline="") as f:
        return {int(r["id"]): r["outcome"] for r in csv.DictReader(f, delimiter="\t") if r["run"] == str(run)}


def verdict_timings(lab: Path, run: int) -> list[dict[str, Any]]:
    """The phase timings of each decided verdict of a run, with its experiment id and outcome.

    `decide` logs one `experiment` event per recorded row, then one `timing` event; a timing without
    `verdict_to_ack` (a rejected verdict, no row) is left out."""
    out, last_id = [], None
    kinds = outcomes(lab, run)
    path = lab / ".arl" / "runs.jsonl"
    for line in path.read_text().splitlines():
        e = json.loads(line)
        if e.get("run") != run:
            continue
        if e.get("event") == "experiment":
            last_id = e.get("id")
        elif e.get("event") == "timing":
            if "verdict_to_ack" in e and last_id is not None:
                out.append({**e, "id": last_id, "outcome": kinds.get(last_id, "?")})
            last_id = None
    return out


def remove_containers(lab: Path) -> None:
    try:
        out = subprocess.run(
            ["docker", "ps", "-aq", "--filter", f"label=arl.root={lab.resolve()}"], capture_output=True, text=True
        ).stdout.split()
    except OSError:  # no docker: `--startup-only` needs none, and started no container
        return
    if out:
        subprocess.run(["docker", "rm", "-f", *out], capture_output=True)
