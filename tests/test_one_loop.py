"""`make research` and `arl run` are one loop: the same steps through the same `run_step`, so the same fault points,
the same error recorded as the run's end, the same exit code from teardown. A step a user adds to the Makefile's
loop runs under `make research`; `arl run` says that it does not run it."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from .conftest import arl, git, run
from .loophelpers import rows, run_arl, set_toml

pytestmark = pytest.mark.docker

ENV = {"ARL_BASE_FROM": "debootstrap"}


def make(lab: Path, args: str, data: str = "data", **env: str) -> subprocess.CompletedProcess[str]:
    return run(["make", "research", f"DATA={data}", f"ARGS={args}"], cwd=lab, check=False, env={**ENV, **env})


def status(lab: Path) -> dict[str, object]:
    return json.loads(arl("status", "--json", cwd=lab).stdout)


def test_a_step_added_to_the_makefile_loop_runs_under_make_and_arl_run_says_it_does_not(lab: Path) -> None:
    makefile = lab / "Makefile"
    text = makefile.read_text()
    turn = "\t  $(STEP) next; case $$? in 0) break ;; 3) ;; *) exit 1 ;; esac; \\\n"
    assert turn in text
    makefile.write_text(text.replace(turn, "\t  echo turn >> turns.log; \\\n" + turn))
    git(lab, "commit", "-qam", "a step of mine in the loop")

    proc = make(lab, "--agent offline --seed 3 --max-iterations 3 --plateau-threshold 0")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    turns = (lab / "turns.log").read_text().splitlines()
    assert len(turns) == 3 == len(rows(lab)) - 1  # one per turn: every turn recorded one experiment

    proc = run_arl(lab, "--max-iterations", "1", "--plateau-threshold", "0")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "differs from arl's loop" in proc.stderr and "`make research` runs yours" in proc.stderr
    assert len((lab / "turns.log").read_text().splitlines()) == 3  # arl run ran arl's steps, not the recipe


def test_a_failing_step_ends_the_run_with_its_error_under_both_loops(lab: Path) -> None:
    (lab / "empty").mkdir()  # no sample: the baseline step fails (after preflight began the run)
    by_make = make(lab, "--agent offline", data="empty")
    assert by_make.returncode == 2  # make's own code for a recipe that failed (its shell exited 1)
    reason = str(status(lab)["stop_reason"])
    assert reason.startswith("error: the unmodified pipeline does not evaluate"), reason
    assert f"run 1 ended: {reason}" in by_make.stdout

    by_arl = run_arl(lab, data="empty")
    assert by_arl.returncode == 1
    assert "differs from arl's loop" not in by_arl.stderr  # the lab's Makefile is arl's own
    assert status(lab)["stop_reason"] == reason
    assert f"run 2 ended: {reason}" in by_arl.stdout


def test_a_run_whose_every_experiment_crashed_fails_under_both_loops(lab: Path) -> None:
    set_toml(lab, "agent", "command", ["sh", "-c", "exit 1"])
    git(lab, "commit", "-qam", "an agent that dies at once")

    by_arl = run_arl(lab, "--max-iterations", "2", agent="command")
    assert by_arl.returncode == 1, by_arl.stdout[-2000:] + by_arl.stderr[-2000:]
    assert "all 2 experiments of run 1 crashed" in by_arl.stderr

    by_make = make(lab, "--agent command --max-iterations 2")
    assert by_make.returncode == 2, by_make.stdout[-2000:] + by_make.stderr[-2000:]
    assert "all 2 experiments of run 2 crashed" in by_make.stderr
    assert [r["outcome"] for r in rows(lab)] == ["baseline", "crash", "crash", "crash", "crash"]


STEP_POINTS = ["after-preflight", "after-image", "after-service-up", "after-baseline", "after-launch"]


@pytest.mark.parametrize("point", STEP_POINTS)
def test_the_step_boundaries_fault_points_fire_under_make_too(lab: Path, point: str) -> None:
    """ARL_FAULT kills the step's process at its end: the recipe fails, its trap's teardown ends the run."""
    proc = make(lab, "--agent offline --max-iterations 1", ARL_FAULT=point)
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "run 1 ended: interrupted" in proc.stdout
    assert status(lab)["active"] is False and not (lab / ".arl" / "lock").exists()
    recorded = [r["outcome"] for r in rows(lab)]
    assert recorded[:1] == ([] if point in ("after-preflight", "after-image", "after-service-up") else ["baseline"])
    assert set(recorded[1:]) <= {"interrupted"}  # what the agent had begun when the run ended, saved
