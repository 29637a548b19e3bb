"""The research loop on the real Docker engine with the offline agent: rows, commits, refs, stops, signals."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

from .conftest import arl, git
from .loophelpers import (
    check_history,
    containers_of,
    kill_agent,
    rows,
    run_arl,
    set_toml,
    start,
    stop_proc,
    wait_for,
)

pytestmark = pytest.mark.docker


def test_five_experiments_rows_trailers_refs_and_user_work_survives(lab: Path) -> None:
    # The user's own work outside the pipeline: staged, unstaged and untracked. It must survive byte for byte.
    (lab / "notes.md").write_text("v1\n")
    git(lab, "add", "notes.md")
    git(lab, "commit", "-qm", "notes")
    (lab / "notes.md").write_text("v2 staged\n")
    git(lab, "add", "notes.md")
    (lab / "notes.md").write_text("v3 unstaged\n")
    (lab / "scratch.txt").write_bytes(b"untracked \x00\xff bytes")
    staged_before = git(lab, "diff", "--cached")
    head_before = git(lab, "rev-parse", "HEAD").strip()

    proc = run_arl(lab, "--max-iterations", "5", "--plateau-threshold", "0", check=True)
    assert "stop: max_iterations" in proc.stdout

    rs = check_history(lab)
    assert [r["id"] for r in rs] == ["0", "1", "2", "3", "4", "5"]
    assert rs[0]["outcome"] == "baseline" and rs[0]["verified_score"]
    assert {r["outcome"] for r in rs[1:]} <= {"keep", "discard", "vetoed", "crash"}
    kept = [r for r in rs if r["outcome"] == "keep"]
    assert kept, "the offline agent should find at least one improvement in 5 tries on the example"
    # Each keep is a commit on the branch with the trailers, made through `git commit`.
    log = git(lab, "log", "--format=%H%x00%B%x01", f"{head_before}..HEAD")
    bodies = [b for b in log.split("\x01") if b.strip()]
    assert len(bodies) == len(kept)
    for body in bodies:
        for trailer in ("Arl-Experiment:", "Arl-Score:", "Arl-Verified-Score:", "Arl-Agent: offline", "Arl-Run: 1"):
            assert trailer in body, body
    best = float(kept[-1]["verified_score"])
    assert best < float(rs[0]["verified_score"])
    # Nothing of the user's was touched.
    assert (lab / "notes.md").read_text() == "v3 unstaged\n"
    assert (lab / "scratch.txt").read_bytes() == b"untracked \x00\xff bytes"
    assert git(lab, "diff", "--cached") == staged_before
    assert not containers_of(lab)
    status = json.loads(arl("status", "--json", cwd=lab).stdout)
    assert status["active"] is False and status["experiment"] == 5
    assert set(status) >= {"active", "pid", "run", "phase", "experiment", "best", "elapsed_s", "cost_usd", "container"}
    # `arl show` reaches a kept and a discarded attempt alike: scores, notes, diff, transcript.
    for r in rs[1:3]:
        shown = arl("show", r["id"], cwd=lab).stdout
        assert f"experiment {r['id']}" in shown and r["outcome"] in shown
        assert "diff --git a/pipeline/model.py" in shown, shown
        assert "transcript (excerpt)" in shown


def test_dry_run_prints_the_command_lines(example_lab: Path) -> None:
    out = arl("run", "--data", "data", "--agent", "offline", "--dry-run", cwd=example_lab).stdout
    assert "credentials: none" in out
    agent_line = next(ln for ln in out.splitlines() if ln.startswith("docker run --sig-proxy=false"))
    for flag in ("--init", "--cap-drop ALL", "--security-opt no-new-privileges", "--read-only", "--pids-limit"):
        assert flag in agent_line
    assert "dst=/workspace/pipeline " in agent_line or "dst=/workspace/pipeline" in agent_line
    assert ".git" not in agent_line.replace(".gitignore", "")
    # the host's evaluation: prepare (data, no pipeline), run (pipeline read-only, no data), score (data, no pipeline)
    prepare, run_, score = (
        next(ln for ln in out.splitlines() if f"--phase {p} " in ln) for p in ("prepare", "run", "score")
    )
    assert all("--network none" in ln for ln in (prepare, run_, score))
    assert "dst=/workspace/pipeline,readonly" in run_ and "dst=/workspace/data" not in run_
    assert "dst=/workspace/pipeline" not in prepare + score and "dst=/workspace/data,readonly" in score
    assert "git -C" in out and "docker pause" in out
    assert not (example_lab / ".arl" / "state.json").exists()  # nothing was run


def test_makefile_research_and_sigint_tears_down(lab: Path, tmp_path: Path) -> None:
    proc = start(
        ["make", "research", "DATA=data", "ARGS=--agent offline --max-iterations 500 --plateau-threshold 0"],
        lab,
        tmp_path / "make.log",
    )
    try:
        wait_for(lambda: len(rows(lab)) >= 3, 180, "two experiments through make research")
        assert containers_of(lab), "the agent's container should be running"
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
        proc.wait(60)
    finally:
        stop_proc(proc)
    log = (tmp_path / "make.log").read_text()
    assert "+ docker run --sig-proxy=false" in log  # the steps print the command lines they run
    assert "run 1 ended: interrupted" in log, log[-2000:]
    assert not containers_of(lab), log[-2000:]
    assert not (lab / ".arl" / "lock").exists()
    check_history(lab)
    status = json.loads(arl("status", "--json", cwd=lab).stdout)
    assert status["active"] is False


def test_killed_container_becomes_crash_and_run_continues(lab: Path, tmp_path: Path) -> None:
    proc = start(
        ["arl", "run", "--data", "data", "--agent", "offline", "--max-iterations", "6", "--plateau-threshold", "0"],
        lab,
        tmp_path / "run.log",
    )
    try:
        wait_for(lambda: len(rows(lab)) >= 2, 180, "the first experiment")
        killed = kill_agent(lab)
        assert proc.wait(300) == 0, (tmp_path / "run.log").read_text()[-3000:]
    finally:
        stop_proc(proc)
    rs = check_history(lab)
    outcomes = [r["outcome"] for r in rs]
    crashes = [r for r in rs if r["outcome"] == "crash"]
    assert len(crashes) == 1, outcomes
    assert crashes[0]["notes"].startswith("[arl] the container exited with code 137"), crashes[0]["notes"]
    assert len(rs) == 7 and outcomes.index("crash") < len(rs) - 1, outcomes  # the run went on after the crash
    assert killed.endswith("-agent1") and f"container {killed} is gone" in (tmp_path / "run.log").read_text()
    assert not containers_of(lab)


def test_second_run_is_refused_with_the_pid(lab: Path, tmp_path: Path) -> None:
    proc = start(
        ["arl", "run", "--data", "data", "--agent", "offline", "--max-iterations", "500", "--plateau-threshold", "0"],
        lab,
        tmp_path / "run.log",
    )
    try:
        wait_for(lambda: (lab / ".arl" / "lock").exists() and len(rows(lab)) >= 1, 180, "the first run")
        second = run_arl(lab, "--max-iterations", "1")
        assert second.returncode == 1
        assert f"pid {proc.pid}" in second.stderr, second.stderr
        assert second.stderr.count("\n") == 1
    finally:
        stop_proc(proc)
    assert not containers_of(lab)


@pytest.mark.parametrize(
    "flags, reason",
    [
        (["--max-hours", "0.0001"], "max_hours"),
        (["--target-score", "3.2"], "target_score"),
        (["--plateau-threshold", "2", "--max-iterations", "50"], "plateau_threshold"),
    ],
)
def test_stopping_conditions(lab: Path, flags: list[str], reason: str) -> None:
    proc = run_arl(lab, *flags, check=True)
    assert f"stop: {reason}" in proc.stdout, proc.stdout
    events = [json.loads(ln) for ln in (lab / ".arl" / "runs.jsonl").read_text().splitlines()]
    assert any(e.get("event") == "stop" and e["reason"].startswith(reason) for e in events)
    check_history(lab)
    if reason == "plateau_threshold":
        last = rows(lab)[-2:]
        assert all(r["outcome"] != "keep" for r in last)


def test_max_restarts_with_an_agent_that_dies(lab: Path) -> None:
    set_toml(lab, "agent", "command", ["sh", "-c", "exit 3"])
    git(lab, "commit", "-qam", "dying agent")
    proc = arl(
        "run",
        "--data",
        "data",
        "--agent",
        "command",
        "--max-restarts",
        "2",
        "--max-iterations",
        "20",
        cwd=lab,
        timeout=300,
        env={"ARL_BASE_FROM": "debootstrap"},
        check=False,
    )
    assert "stop: max_restarts" in proc.stdout, proc.stdout
    rs = check_history(lab)
    assert [r["outcome"] for r in rs[1:]] == ["crash"] * 3
    assert "exited with code 3" in rs[1]["notes"]
    # every experiment crashed: the reason is printed as it happens, and the run is a failure, not a success
    assert proc.stdout.count("why: ") == 3 and "exited with code 3" in proc.stdout.split("why: ")[1]
    assert proc.returncode == 1 and "all 3 experiments of run 1 crashed" in proc.stderr


def test_resume_continues_numbering_and_best(lab: Path) -> None:
    run_arl(lab, "--max-iterations", "3", "--plateau-threshold", "0", check=True)
    first = rows(lab)
    run_arl(lab, "--max-iterations", "2", "--plateau-threshold", "0", "--seed", "9", check=True)
    rs = check_history(lab)
    assert [int(r["id"]) for r in rs] == list(range(6))
    assert [r["run"] for r in rs[4:]] == ["2", "2"]
    assert sum(r["outcome"] == "baseline" for r in rs) == 1
    best_before = min(float(r["verified_score"]) for r in first if r["outcome"] in ("baseline", "keep"))
    assert all(float(r["best"]) <= best_before for r in rs[4:])
