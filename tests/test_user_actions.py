"""What a user ordinarily does around a lab loses no history and never moves the branch backwards, in a repository
with its own Makefile and staged, unstaged and untracked work of its own, the lab in a subfolder (real git, the real
engine): an empty results.tsv, a `git stash` between runs, a second `make research`, a pipeline tuned by hand."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from .conftest import arl, git, own_work_intact, run
from .loophelpers import (
    check_history,
    containers_of,
    rows,
    run_arl,
    set_toml,
    start,
    stop_proc,
    wait_for,
)

pytestmark = [pytest.mark.docker, pytest.mark.lab(folder="research", busy=True)]
ENV = {"ARL_BASE_FROM": "debootstrap", "ARL_QUIET": "1"}
QUIET = {"ARL_QUIET": "1"}


def refs(lab: Path) -> dict[str, str]:
    out = git(lab, "for-each-ref", "--format=%(refname) %(objectname)", "refs/arl/")
    return dict(line.split() for line in out.splitlines())


def test_an_empty_results_file_is_a_new_history(lab: Path) -> None:
    (lab / "results.tsv").write_text("")  # what autoresearch-lab's `arl init` leaves
    git(lab, "commit", "-qm", "empty history", "--", "results.tsv")
    proc = run_arl(lab, "--plateau-threshold", "0", "--max-iterations", "1", "--seed", "1", env=QUIET, timeout=600)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    assert (lab / "results.tsv").read_text().startswith("id\trun\ttime\toutcome\t")
    assert "baseline: evaluating the pipeline on" in proc.stdout  # something is said while it evaluates
    assert [r["outcome"] for r in rows(lab)][0] == "baseline"
    for cmd in (["results"], ["status"]):
        assert arl(*cmd, cwd=lab, check=False).returncode == 0, cmd
    assert not (lab / ".arl" / "lock").exists()
    check_history(lab)
    own_work_intact(lab.parent)


def test_a_stash_between_runs_reuses_no_id_and_moves_no_ref(lab: Path) -> None:
    proc = run_arl(lab, "--plateau-threshold", "0", "--max-iterations", "3", "--seed", "2", env=QUIET, timeout=600)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    first = refs(lab)
    first_rows = rows(lab)
    assert len(first) == len(first_rows) >= 4
    # results.tsv holds the rows of the discards since the last keep, uncommitted: a stash takes them away
    assert git(lab, "status", "--porcelain", "--", "results.tsv").strip()
    git(lab, "stash", "push", "-q", "--", "results.tsv")
    assert len(rows(lab)) < len(first_rows)
    proc = run_arl(lab, "--plateau-threshold", "0", "--max-iterations", "2", "--seed", "5", env=QUIET, timeout=600)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    after = refs(lab)
    assert all(after[name] == sha for name, sha in first.items()), "an experiment's ref was moved"
    new_ids = [int(r["id"]) for r in rows(lab) if r["run"] == "2"]
    old_ids = {int(r["id"]) for r in first_rows}
    assert new_ids and not set(new_ids) & old_ids, (new_ids, old_ids)
    for r in rows(lab):
        assert after[f"refs/arl/curve-fit/experiments/{r['id']}"] == r["commit"]


def test_a_second_make_research_is_refused_and_leaves_the_first_run_alone(lab: Path, tmp_path: Path) -> None:
    research = ["make", "research", "DATA=data", "ARGS=--agent offline --plateau-threshold 0 --max-iterations 500"]
    first = start(research, lab, tmp_path / "first.log")
    try:
        wait_for(lambda: len(rows(lab)) >= 2, 240, "the first run's first experiment")
        lock = json.loads((lab / ".arl" / "lock").read_text())
        names = containers_of(lab)
        second = run(research, cwd=lab, check=False, env=ENV, timeout=120)
        assert second.returncode != 0 and "a run is already active in this lab" in second.stderr, second.stderr
        assert json.loads((lab / ".arl" / "lock").read_text()) == lock  # still the first run's
        assert json.loads((lab / ".arl" / "state.json").read_text())["active"] is True
        assert set(names) <= set(containers_of(lab)) or first.poll() is not None
        assert "crash" not in {r["outcome"] for r in rows(lab)}
        seen = len(rows(lab))
        wait_for(lambda: len(rows(lab)) > seen + 1, 240, "the first run to go on deciding")
        assert first.poll() is None, (tmp_path / "first.log").read_text()[-3000:]
    finally:
        stop_proc(first)
    assert not (lab / ".arl" / "lock").exists() and not containers_of(lab)
    outcomes = [r["outcome"] for r in check_history(lab)]
    assert "crash" not in outcomes and outcomes[-1] in ("keep", "discard", "interrupted", "vetoed"), outcomes
    own_work_intact(lab.parent)


HAND_TUNED = {"HEIGHT": "2.0", "SHARPNESS": "2.0", "CENTER": "0.0", "SLOPE": "0.7", "OFFSET": "1.0"}  # MAE 0.8686


def test_a_pipeline_improved_by_hand_is_measured_and_never_regressed(lab: Path) -> None:
    proc = run_arl(lab, "--plateau-threshold", "0", "--max-iterations", "3", "--seed", "1", env=QUIET, timeout=600)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    model = lab / "pipeline" / "model.py"
    text = model.read_text()
    for name, value in HAND_TUNED.items():
        text = re.sub(rf"(?m)^{name} = .*$", f"{name} = {value}", text)
    model.write_text(text)
    git(lab, "commit", "-qm", "tuned by hand", "--", "pipeline")
    own_work_intact(lab.parent)
    proc = run_arl(lab, "--plateau-threshold", "0", "--max-iterations", "4", "--seed", "2", env=QUIET, timeout=600)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    assert "baseline already recorded" not in proc.stdout
    run2 = [r for r in rows(lab) if r["run"] == "2"]
    assert run2[0]["outcome"] == "baseline" and "not the tree of the best recorded experiment" in run2[0]["notes"]
    measured = float(run2[0]["verified_score"])
    assert abs(measured - 0.8686) < 1e-3, measured
    for r in run2[1:]:
        if r["outcome"] == "keep":  # judged against what the branch held, not the older, worse best
            assert float(r["verified_score"]) < measured, r
        assert float(r["best"]) <= measured
    check_history(lab)
    own_work_intact(lab.parent)


@pytest.mark.parametrize("how", ["arl run", "make research"])
def test_a_stop_caused_by_failures_exits_non_zero(lab: Path, how: str) -> None:
    set_toml(lab, "agent", "command", ["sh", "-c", "echo broken >&2; exit 3"])
    git(lab, "commit", "-qm", "an agent that cannot start", "--", "lab.toml")
    flags = "--agent command --max-restarts 1 --max-iterations 5"
    if how == "arl run":
        proc = run_arl(lab, *flags.split(), env=QUIET, timeout=600)
    else:
        proc = run(["make", "research", "DATA=data", f"ARGS={flags}"], cwd=lab, check=False, env=ENV)
    assert "stop: max_restarts" in proc.stdout, (proc.stdout + proc.stderr)[-3000:]
    assert proc.returncode != 0
    assert not (lab / ".arl" / "lock").exists() and not containers_of(lab)
    own_work_intact(lab.parent)
