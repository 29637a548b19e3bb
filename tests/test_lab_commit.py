"""Committing a lab commits the lab's files only (the line `arl init` prints, the README's quick start), with the
user's staged, unstaged and untracked work around it; `arl init --adopt` makes an autoresearch-lab lab an arl lab
without replacing any of its files."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import arl, busy_repo, git, own_work_intact, run
from tests.test_config import one_line_error


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return busy_repo(tmp_path / "repo")


def committed(repo: Path) -> list[str]:
    return git(repo, "show", "--name-only", "--format=", "HEAD").split()


def test_the_commit_line_arl_init_prints_leaves_staged_work_out(repo: Path) -> None:
    lab = repo / "research"
    lab.mkdir()
    out = arl("init", cwd=lab).stdout
    (line,) = [ln.strip() for ln in out.splitlines() if ln.strip().startswith("git add")]
    assert " -- " in line.split("git commit")[1], line
    run(["sh", "-c", line], cwd=lab)
    assert "staged.txt" not in committed(repo)
    assert {"research/lab.toml", "research/Makefile", "research/results.tsv", "research/.gitignore"} <= set(
        committed(repo)
    )
    own_work_intact(repo)


AR_TOML = '[lab]\nname = "old"\n\n[backend]\nclass = "B"\n'
AR_BACKEND = """from autoresearch_lab.harness.backend import EvalBackend, EvalResult


class B(EvalBackend):
    def evaluate(self, pipeline_dir, data_dir):
        return EvalResult(score=1.0)
"""


@pytest.fixture
def ar_lab(repo: Path) -> Path:
    """A lab as autoresearch-lab left it: lab.toml, backend.py, AGENT.md, an empty results.tsv, a pipeline."""
    lab = repo / "old-lab"
    (lab / "pipeline").mkdir(parents=True)
    (lab / "pipeline" / "model.py").write_text("X = 1\n")
    (lab / "data").mkdir()
    (lab / "data" / "a.txt").write_text("1\n")
    (lab / "lab.toml").write_text(AR_TOML)
    (lab / "backend.py").write_text(AR_BACKEND)
    (lab / "AGENT.md").write_text("# my own instructions\n")
    (lab / "results.tsv").write_text("")
    git(repo, "add", "old-lab")
    git(repo, "commit", "-qm", "an autoresearch-lab lab", "--", "old-lab")
    return lab


def test_adopt_makes_an_autoresearch_lab_lab_an_arl_lab_and_replaces_nothing(ar_lab: Path) -> None:
    before = {p.name: p.read_bytes() for p in ar_lab.iterdir() if p.is_file()}
    one_line_error(arl("init", cwd=ar_lab, check=False), "already exist", "--force")
    out = arl("init", "--adopt", cwd=ar_lab).stdout
    assert {p.name: p.read_bytes() for p in ar_lab.iterdir() if p.is_file() and p.name in before} == before
    assert (ar_lab / "Makefile").is_file() and ".arl/" in (ar_lab / ".gitignore").read_text()
    assert not list(ar_lab.glob("*.orig"))
    (line,) = [ln.strip() for ln in out.splitlines() if ln.strip().startswith("git add")]
    run(["sh", "-c", line], cwd=ar_lab)
    assert {"old-lab/Makefile", "old-lab/.gitignore"} <= set(committed(ar_lab.parent))
    assert "staged.txt" not in committed(ar_lab.parent)
    dry = arl("run", "--dry-run", "--agent", "offline", "--data", "data", cwd=ar_lab, check=False)
    assert dry.returncode == 0, dry.stderr
    own_work_intact(ar_lab.parent)


def test_adopt_without_a_lab_says_what_to_do(repo: Path) -> None:
    one_line_error(arl("init", "--adopt", cwd=repo, check=False), "no lab.toml", "arl init")
