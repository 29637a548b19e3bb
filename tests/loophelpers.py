"""Helpers for the loop tests on the real engine: running arl in the background and waiting on conditions."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

from .conftest import BIN, arl, git, run
from .conftest import set_toml as set_toml  # lab.toml edits live with the labs (conftest); many tests import it here


class Ran(NamedTuple):
    """A finished `arl run`: read as `code, out, err = ...` or as a CompletedProcess (`.returncode`, ...)."""

    returncode: int
    stdout: str
    stderr: str


def run_arl(
    lab: Path,
    *args: str,
    agent: str = "offline",
    seed: int = 3,
    data: str = "data",
    timeout: float = 300,
    check: bool = False,
    env: dict[str, str] | None = None,
    fault: str | None = None,
) -> Ran:
    """`arl run --data DATA --agent AGENT --seed SEED ARGS...` in the lab, on the debootstrap-built base image (a
    later `--agent` or `--seed` in ARGS wins; the seed is the offline agent's only); `fault`: arl killed at that
    fault point (ARL_FAULT, arl/util/faults.py); `check`: a non-zero exit fails the test with the output."""
    argv = ["run", "--data", data, "--agent", agent, "--seed", str(seed), *args]
    env = {"ARL_BASE_FROM": "debootstrap", **({"ARL_FAULT": fault} if fault else {}), **(env or {})}
    proc = arl(*argv, cwd=lab, check=check, timeout=timeout, env=env)
    return Ran(proc.returncode, proc.stdout, proc.stderr)


def arl_step(lab: Path, *args: str, ok: tuple[int, ...] | None = (0,), timeout: float = 600) -> Ran:
    """`arl-step ARGS...` in the lab (one step of the loop, by hand), on the debootstrap-built base image; an exit
    code not in `ok` fails the test with the output (`ok=None`: the caller judges it)."""
    proc = run(
        [str(BIN / "arl-step"), *args], cwd=lab, check=False, env={"ARL_BASE_FROM": "debootstrap"}, timeout=timeout
    )
    assert ok is None or proc.returncode in ok, (args, proc.returncode, proc.stdout, proc.stderr)
    return Ran(proc.returncode, proc.stdout, proc.stderr)


def env_for() -> dict[str, str]:
    return {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", "ARL_BASE_FROM": "debootstrap"}


def start(cmd: list[str], cwd: Path, log: Path) -> subprocess.Popen[bytes]:
    """A background process in its own session, so a test can signal its whole group like a terminal."""
    with open(log, "wb") as out:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            cmd, cwd=cwd, env=env_for(), stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def wait_for(cond: Callable[[], Any], timeout: float, what: str, interval: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = cond()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")


def rows(lab: Path) -> list[dict[str, str]]:
    path = lab / "results.tsv"
    if not path.exists():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f, delimiter="\t"))


def containers_of(lab: Path) -> list[str]:
    out = subprocess.run(
        ["docker", "ps", "-a", "--filter", f"label=arl.root={lab.resolve()}", "--format", "{{.Names}}"],
        capture_output=True,
        text=True,
    ).stdout
    return [n for n in out.split() if n]


def kill_agent(lab: Path, timeout: float = 60) -> str:
    """SIGKILL the lab's running agent container (never a verification one), retrying while it is frozen for a
    decision (a paused container cannot be killed) or between two sessions; returns its name."""

    def attempt() -> str | None:
        out = subprocess.run(
            ["docker", "ps", "--filter", f"label=arl.root={lab.resolve()}", "--filter", "label=arl.role=agent",
             "--filter", "status=running", "--format", "{{.Names}}"],
            capture_output=True, text=True,
        ).stdout.split()  # fmt: skip
        for name in out:
            if subprocess.run(["docker", "kill", name], capture_output=True).returncode == 0:
                return name
        return None

    return wait_for(attempt, timeout, "a running agent container to kill", interval=0.05)


def cleanup_containers(lab: Path) -> None:
    names = containers_of(lab)
    if names:
        subprocess.run(["docker", "rm", "-f", *names], capture_output=True)


def stop_proc(proc: subprocess.Popen[bytes], timeout: float = 60) -> int:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return proc.returncode


def check_history(lab: Path, lab_name: str = "curve-fit") -> list[dict[str, str]]:
    """The invariants every run must leave: rows' commits resolve, refs agree, ids unique, pipeline clean."""
    rs = rows(lab)
    ids = [int(r["id"]) for r in rs]
    assert ids == sorted(set(ids)), f"ids not unique and increasing: {ids}"
    for r in rs:
        assert git(lab, "rev-parse", "--verify", "--quiet", r["commit"] + "^{commit}").strip(), r
        ref = git(lab, "rev-parse", f"refs/arl/{lab_name}/experiments/{r['id']}").strip()
        assert ref == r["commit"], f"experiment {r['id']}: ref {ref} != row commit {r['commit']}"
    assert git(lab, "status", "--porcelain", "--untracked-files=all", "--", "pipeline").strip() == ""
    return rs
