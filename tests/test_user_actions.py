"""What a user ordinarily does around a lab loses no history and never moves the branch backwards, in a repository
with its own Makefile and staged, unstaged and untracked work of its own, the lab in a subfolder (real git, the real
engine): an empty results.tsv, a `git stash` between runs, a second `make research`, a pipeline tuned by hand."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import arl, git, make_repo, run
from .loophelpers import (
    check_history,
    cleanup_containers,
    containers_of,
    rows,
    set_toml,
    start,
    stop_proc,
    wait_for,
)

pytestmark = pytest.mark.docker
ENV = {"ARL_BASE_FROM": "debootstrap", "ARL_QUIET": "1"}
FLAGS = ["--data", "data", "--agent", "offline", "--plateau-threshold", "0"]


def busy_repo(path: Path) -> Path:
    """A repository with work of its own: a root Makefile, a staged file, an unstaged change, an untracked file."""
    repo = make_repo(path)
    (repo / "Makefile").write_text("all:\n\t@echo the user's own build\nDATA = user-data\n")
    (repo / "notes.txt").write_text("v1\n")
    git(repo, "add", "Makefile", "notes.txt")
    git(repo, "commit", "-qm", "the user's project")
    (repo / "staged.txt").write_text("staged work\n")
    git(repo, "add", "staged.txt")
    (repo / "notes.txt").write_text("v2, not staged\n")
    (repo / "scratch.txt").write_text("untracked\n")
    return repo


def own_work_intact(repo: Path) -> None:
    status = git(repo, "status", "--porcelain", "--", "staged.txt", "notes.txt", "scratch.txt", "Makefile")
    assert sorted(status.splitlines()) == [" M notes.txt", "?? scratch.txt", "A  staged.txt"], status
    assert (repo / "notes.txt").read_text() == "v2, not staged\n"


def lab_paths(lab: Path) -> list[str]:
    """The lab's files, as `arl init` lists them (the line it prints says what to commit)."""
    return ["lab.toml", "backend.py", "AGENT.md", "Makefile", "results.tsv", ".gitignore", "pipeline", "data"]


@pytest.fixture
def busy_lab(tmp_path: Path, base_image: str) -> Iterator[Path]:
    repo = busy_repo(tmp_path / "repo")
    lab = repo / "research"
    lab.mkdir()
    arl("init", "--example", "curve-fit", cwd=lab)
    git(lab, "add", "--", *lab_paths(lab))
    git(lab, "commit", "-qm", "lab", "--", *lab_paths(lab))
    own_work_intact(repo)
    yield lab
    cleanup_containers(lab)


def arl_run(lab: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return arl("run", *FLAGS, *args, cwd=lab, check=False, timeout=600, env=ENV)


def refs(lab: Path) -> dict[str, str]:
    out = git(lab, "for-each-ref", "--format=%(refname) %(objectname)", "refs/arl/")
    return dict(line.split() for line in out.splitlines())


def test_an_empty_results_file_is_a_new_history(busy_lab: Path) -> None:
    (busy_lab / "results.tsv").write_text("")  # what autoresearch-lab's `arl init` leaves
    git(busy_lab, "commit", "-qm", "empty history", "--", "results.tsv")
    proc = arl_run(busy_lab, "--max-iterations", "1", "--seed", "1")
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    assert (busy_lab / "results.tsv").read_text().startswith("id\trun\ttime\toutcome\t")
    assert "baseline: evaluating the pipeline on" in proc.stdout  # something is said while it evaluates
    assert [r["outcome"] for r in rows(busy_lab)][0] == "baseline"
    for cmd in (["results"], ["status"]):
        assert arl(*cmd, cwd=busy_lab, check=False).returncode == 0, cmd
    assert not (busy_lab / ".arl" / "lock").exists()
    check_history(busy_lab)
    own_work_intact(busy_lab.parent)


def test_a_stash_between_runs_reuses_no_id_and_moves_no_ref(busy_lab: Path) -> None:
    proc = arl_run(busy_lab, "--max-iterations", "3", "--seed", "2")
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    first = refs(busy_lab)
    first_rows = rows(busy_lab)
    assert len(first) == len(first_rows) >= 4
    # results.tsv holds the rows of the discards since the last keep, uncommitted: a stash takes them away
    assert git(busy_lab, "status", "--porcelain", "--", "results.tsv").strip()
    git(busy_lab, "stash", "push", "-q", "--", "results.tsv")
    assert len(rows(busy_lab)) < len(first_rows)
    proc = arl_run(busy_lab, "--max-iterations", "2", "--seed", "5")
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    after = refs(busy_lab)
    assert all(after[name] == sha for name, sha in first.items()), "an experiment's ref was moved"
    new_ids = [int(r["id"]) for r in rows(busy_lab) if r["run"] == "2"]
    old_ids = {int(r["id"]) for r in first_rows}
    assert new_ids and not set(new_ids) & old_ids, (new_ids, old_ids)
    for r in rows(busy_lab):
        assert after[f"refs/arl/curve-fit/experiments/{r['id']}"] == r["commit"]


def test_a_second_make_research_is_refused_and_leaves_the_first_run_alone(busy_lab: Path, tmp_path: Path) -> None:
    research = ["make", "research", "DATA=data", "ARGS=--agent offline --plateau-threshold 0 --max-iterations 500"]
    first = start(research, busy_lab, tmp_path / "first.log")
    try:
        wait_for(lambda: len(rows(busy_lab)) >= 2, 240, "the first run's first experiment")
        lock = json.loads((busy_lab / ".arl" / "lock").read_text())
        names = containers_of(busy_lab)
        second = run(research, cwd=busy_lab, check=False, env=ENV, timeout=120)
        assert second.returncode != 0 and "a run is already active in this lab" in second.stderr, second.stderr
        assert json.loads((busy_lab / ".arl" / "lock").read_text()) == lock  # still the first run's
        assert json.loads((busy_lab / ".arl" / "state.json").read_text())["active"] is True
        assert set(names) <= set(containers_of(busy_lab)) or first.poll() is not None
        assert "crash" not in {r["outcome"] for r in rows(busy_lab)}
        seen = len(rows(busy_lab))
        wait_for(lambda: len(rows(busy_lab)) > seen + 1, 240, "the first run to go on deciding")
        assert first.poll() is None, (tmp_path / "first.log").read_text()[-3000:]
    finally:
        stop_proc(first)
    assert not (busy_lab / ".arl" / "lock").exists() and not containers_of(busy_lab)
    outcomes = [r["outcome"] for r in check_history(busy_lab)]
    assert "crash" not in outcomes and outcomes[-1] in ("keep", "discard", "interrupted", "vetoed"), outcomes
    own_work_intact(busy_lab.parent)


HAND_TUNED = {"HEIGHT": "2.0", "SHARPNESS": "2.0", "CENTER": "0.0", "SLOPE": "0.7", "OFFSET": "1.0"}  # MAE 0.8686


def test_a_pipeline_improved_by_hand_is_measured_and_never_regressed(busy_lab: Path) -> None:
    proc = arl_run(busy_lab, "--max-iterations", "3", "--seed", "1")
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    model = busy_lab / "pipeline" / "model.py"
    text = model.read_text()
    for name, value in HAND_TUNED.items():
        text = re.sub(rf"(?m)^{name} = .*$", f"{name} = {value}", text)
    model.write_text(text)
    git(busy_lab, "commit", "-qm", "tuned by hand", "--", "pipeline")
    own_work_intact(busy_lab.parent)
    proc = arl_run(busy_lab, "--max-iterations", "4", "--seed", "2")
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    assert "baseline already recorded" not in proc.stdout
    run2 = [r for r in rows(busy_lab) if r["run"] == "2"]
    assert run2[0]["outcome"] == "baseline" and "not the tree of the best recorded experiment" in run2[0]["notes"]
    measured = float(run2[0]["verified_score"])
    assert abs(measured - 0.8686) < 1e-3, measured
    for r in run2[1:]:
        if r["outcome"] == "keep":  # judged against what the branch held, not the older, worse best
            assert float(r["verified_score"]) < measured, r
        assert float(r["best"]) <= measured
    check_history(busy_lab)
    own_work_intact(busy_lab.parent)


@pytest.mark.parametrize("how", ["arl run", "make research"])
def test_a_stop_caused_by_failures_exits_non_zero(busy_lab: Path, how: str) -> None:
    set_toml(busy_lab, "agent", "command", ["sh", "-c", "echo broken >&2; exit 3"])
    git(busy_lab, "commit", "-qm", "an agent that cannot start", "--", "lab.toml")
    flags = "--agent command --max-restarts 1 --max-iterations 5"
    if how == "arl run":
        proc = arl("run", "--data", "data", *flags.split(), cwd=busy_lab, check=False, timeout=600, env=ENV)
    else:
        proc = run(["make", "research", "DATA=data", f"ARGS={flags}"], cwd=busy_lab, check=False, env=ENV)
    assert "stop: max_restarts" in proc.stdout, (proc.stdout + proc.stderr)[-3000:]
    assert proc.returncode != 0
    assert not (busy_lab / ".arl" / "lock").exists() and not containers_of(busy_lab)
    own_work_intact(busy_lab.parent)
