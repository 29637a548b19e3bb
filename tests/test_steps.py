"""The steps one by one, as a person (or the Makefile) runs them: each idempotent over the run state."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .conftest import arl, git, run
from .loophelpers import arl_step, check_history, containers_of, rows, set_toml

pytestmark = pytest.mark.docker


def test_steps_by_hand_are_idempotent(lab: Path) -> None:
    arl_step(
        lab, "preflight", "--data", "data", "--agent", "offline", "--max-iterations", "2", "--plateau-threshold", "0"
    )
    arl_step(lab, "preflight", "--data", "data", "--agent", "offline", "--max-iterations", "2")  # same owner: again
    arl_step(lab, "image")
    arl_step(lab, "service-up")  # no service in this lab: a no-op
    arl_step(lab, "baseline")
    assert "already recorded" in arl_step(lab, "baseline").stdout
    assert [r["outcome"] for r in rows(lab)] == ["baseline"]
    arl_step(lab, "launch")
    assert "already running" in arl_step(lab, "launch").stdout
    assert len(containers_of(lab)) == 1
    assert arl_step(lab, "should-stop", ok=(3,)).returncode == 3
    assert arl_step(lab, "wait", ok=(0,)).returncode == 0
    arl_step(lab, "decide")
    # Again with nothing pending: nothing happens. The agent is held still so that it cannot send its next verdict
    # in between (it would be a new verdict, rightly decided).
    name = json.loads(arl("status", "--json", cwd=lab).stdout)["container"]
    run(["docker", "pause", name])
    arl_step(lab, "decide")
    assert len(rows(lab)) == 2
    run(["docker", "unpause", name])
    arl_step(lab, "wait")
    arl_step(lab, "decide")
    stop = arl_step(lab, "should-stop", ok=(0,))
    assert "stop: max_iterations" in stop.stdout
    arl_step(lab, "teardown")
    arl_step(lab, "teardown")
    assert not containers_of(lab)
    check_history(lab)
    assert len(rows(lab)) == 3
    assert json.loads(arl("status", "--json", cwd=lab).stdout)["active"] is False
    helped = arl_step(lab, "--help").stdout  # every step with its exit codes, as the Makefile relies on them
    assert "should-stop" in helped and "exit: 0 stop, 3 go on, 1 error" in helped
    assert "exit: 0 verdict ready, 3 container gone, 4 timed out, 1 error" in helped


def test_branch_and_no_verify(lab: Path) -> None:
    arl("run", "--data", "data", "--agent", "offline", "--max-iterations", "4", "--plateau-threshold", "0",
        "--seed", "3", "--branch", "research/one", "--no-verify", cwd=lab, timeout=300,
        env={"ARL_BASE_FROM": "debootstrap"})  # fmt: skip
    assert git(lab, "symbolic-ref", "--short", "HEAD").strip() == "research/one"
    assert "Arl-Experiment" not in git(lab, "log", "--format=%B", "main")
    kept = [r for r in rows(lab) if r["outcome"] == "keep"]
    assert kept and all(r["verified_score"] == "" for r in kept)  # the agent's own score, not re-checked
    assert "Arl-Verified-Score: none\n" in git(lab, "log", "--format=%B", "research/one")
    check_history(lab)


def test_verdict_written_just_before_the_container_dies(lab: Path) -> None:
    # The agent writes its verdict and dies at once, before the host has even noticed the file.
    # It exits the moment its verdict file has landed, whatever the host's speed (no deadline to race).
    last_words = (
        "arl eval --json >/dev/null; arl verdict discard --notes 'last words' & "
        "until ls /workspace/control/verdict-*.json >/dev/null 2>&1; do sleep 0.01; done; exit 0"
    )
    set_toml(lab, "agent", "command", ["sh", "-c", last_words])  # fmt: skip
    git(lab, "commit", "-qam", "dying agent")
    arl("run", "--data", "data", "--agent", "command", "--max-iterations", "2", cwd=lab, timeout=300,
        env={"ARL_BASE_FROM": "debootstrap"})  # fmt: skip
    rs = check_history(lab)
    assert rs[1]["outcome"] == "discard" and rs[1]["notes"] == "last words"
    assert not containers_of(lab)


def test_a_failing_make_guard_vetoes_the_keep(lab: Path) -> None:
    makefile = lab / "Makefile"
    makefile.write_text(makefile.read_text().replace("guard:\n\t@true", "guard:\n\t@echo guard says no; exit 1"))
    git(lab, "commit", "-qam", "a strict guard")
    head = git(lab, "rev-parse", "HEAD")
    arl("run", "--data", "data", "--agent", "offline", "--max-iterations", "3", "--plateau-threshold", "0",
        "--seed", "3", cwd=lab, timeout=300, env={"ARL_BASE_FROM": "debootstrap"})  # fmt: skip
    rs = check_history(lab)
    vetoed = [r for r in rs if r["outcome"] == "vetoed"]
    assert vetoed and all("pre-commit hook" in r["notes"] for r in vetoed), rs
    assert not [r for r in rs if r["outcome"] == "keep"]
    assert git(lab, "rev-parse", "HEAD") == head  # nothing was committed


@pytest.mark.parametrize("point", ["decide:after-journal", "keep:after-row", "discard:after-row", "keep:after-commit"])
def test_ctrl_c_in_the_middle_of_a_decision(lab: Path, point: str) -> None:
    """A Ctrl-C at a point inside decide: teardown alone (no second run) leaves nothing lost or doubled."""
    proc = arl("run", "--data", "data", "--agent", "offline", "--max-iterations", "8", "--plateau-threshold", "0",
               "--seed", "1", cwd=lab, timeout=300, check=False,
               env={"ARL_BASE_FROM": "debootstrap", "ARL_FAULT": point, "ARL_FAULT_SIGNAL": "INT"})  # fmt: skip
    assert proc.returncode == 130, proc.stdout[-2000:] + proc.stderr[-2000:]
    rs = check_history(lab)
    seqs = [json.loads(r["metrics"]).get("verdict_seq") for r in rs if r["outcome"] != "baseline"]
    seqs = [s for s in seqs if s is not None]
    assert len(seqs) == len(set(seqs)), rs  # no verdict recorded twice
    assert not list((lab / ".arl" / "control").glob("verdict-*.json"))  # none left unanswered
    assert not containers_of(lab) and not (lab / ".arl" / "lock").exists()
    for r in (r for r in rs if r["outcome"] == "keep"):
        assert f"Arl-Experiment: {r['id']}" in git(lab, "log", "--format=%B")
