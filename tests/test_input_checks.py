"""Input is checked before anything runs, `--dry-run` included: an empty or missing data folder, a data folder that
holds the lab or the repository, every [sandbox] value docker would refuse, a missing instructions file. Each is one
line naming the key, in a repository with its own Makefile and work of its own."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import LabMaker, arl, git, own_work_intact, run
from tests.loophelpers import set_toml
from tests.test_config import one_line_error

pytestmark = pytest.mark.lab(image=None, folder="research", busy=True, commit=False)  # no agent runs here


def dry(lab: Path, *args: str) -> str:
    proc = arl("run", "--dry-run", "--agent", "offline", *args, cwd=lab, check=False)
    return one_line_error(proc)


@pytest.mark.parametrize("data", ["", "  "])
def test_an_empty_data_folder_is_an_error(lab: Path, data: str) -> None:
    assert "--data is empty" in dry(lab, "--data", data)


def test_make_research_with_an_empty_DATA_is_an_error_and_touches_nothing(lab: Path) -> None:
    git(lab, "add", "--", ".")
    git(lab, "commit", "-qm", "lab", "--", ".")
    proc = run(["make", "research", "DATA=", "ARGS=--agent offline"], cwd=lab, check=False, timeout=120)
    assert proc.returncode != 0 and "arl-step: error: DATA is empty" in proc.stderr, proc.stderr
    assert "docker run" not in proc.stderr + proc.stdout
    assert not (lab / ".arl" / "lock").exists()
    own_work_intact(lab.parent)


@pytest.mark.parametrize("where", ["lab", "repo", "root"])
def test_a_data_folder_that_holds_the_lab_or_the_repository_is_an_error(lab: Path, where: str) -> None:
    data = {"lab": lab, "repo": lab.parent, "root": Path("/")}[where]
    line = dry(lab, "--data", str(data))
    assert "--data" in line and ("holds the lab" in line or "holds the repository" in line), line


def test_a_holdout_that_holds_the_lab_is_an_error(lab: Path) -> None:
    assert "--holdout" in dry(lab, "--data", "data", "--holdout", ".")


@pytest.mark.parametrize(
    ("key", "value"),
    [("pids_limit", -1), ("pids_limit", 0), ("memory", "8x"), ("memory", "1k"), ("cpus", 0), ("cpus", "-1"),
     ("cpus", "many"), ("cpus", 100000)],
)  # fmt: skip
def test_sandbox_values_docker_would_refuse_are_errors_naming_the_key(lab: Path, key: str, value: object) -> None:
    set_toml(lab, "sandbox", key, value)
    assert f"[sandbox] {key}" in dry(lab, "--data", "data")


def test_sandbox_values_docker_takes_pass(lab: Path) -> None:
    for key, value in (("memory", "1.5g"), ("cpus", "1"), ("pids_limit", 64)):
        set_toml(lab, "sandbox", key, value)
    proc = arl("run", "--dry-run", "--agent", "offline", "--data", "data", cwd=lab, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "--memory 1.5g" in proc.stdout and "--cpus 1" in proc.stdout


def test_a_missing_instructions_file_is_an_error(lab: Path) -> None:
    (lab / "AGENT.md").unlink()
    assert "[lab] agent_instructions" in dry(lab, "--data", "data")


def test_a_pipeline_beside_the_lab_is_accepted_and_one_outside_the_repository_is_not(lab: Path, tmp_path: Path) -> None:
    src = lab.parent / "src" / "model"
    src.mkdir(parents=True)
    (src / "model.py").write_text("X = 1\n")
    set_toml(lab, "lab", "pipeline_dir", "../src/model")
    git(lab, "add", "--", ".", "../src")
    git(lab, "commit", "-qm", "lab", "--", ".", "../src")
    proc = arl("run", "--dry-run", "--agent", "offline", "--data", "data", cwd=lab, check=False)
    assert proc.returncode == 0, proc.stderr
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    set_toml(lab, "lab", "pipeline_dir", str(outside))
    assert "[lab] pipeline_dir" in dry(lab, "--data", "data") and "outside the repository" in dry(lab, "--data", "data")


def test_a_folder_that_is_no_repository_or_has_no_commit_says_so(make_lab: LabMaker) -> None:
    lab = make_lab(image=None, commit=False)
    assert "no commit yet" in dry(lab, "--data", "data")
    run(["rm", "-rf", ".git"], cwd=lab)
    assert "not in a git repository" in dry(lab, "--data", "data")
