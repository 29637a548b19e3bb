"""Noise-aware acceptance: with seeded noise larger than the true improvements, verifying with repeats = 3 keeps
fewer false improvements than repeats = 1."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from .conftest import arl, git, make_repo, summary_table
from .loophelpers import check_history, cleanup_containers, rows

pytestmark = pytest.mark.docker
TABLE = summary_table("noise: false improvements kept", ["repeats", "experiments", "keeps", "false keeps"])

BACKEND = """
import hashlib, random, re
from arl import EvalBackend, EvalResult

def true_score(x):
    return 0.01 * abs(x - 5.0)

class NoisyBackend(EvalBackend):
    def setup(self):
        self.draw = 0
    def evaluate(self, pipeline_dir, data_dir, sample_ids=None):
        text = (pipeline_dir / "model.py").read_text()
        x = float(re.search(r"^X = (.*)$", text, re.M).group(1))
        # Seeded noise: fixed for a given pipeline and draw, so every run of this test sees the same numbers.
        seed = int(hashlib.sha256(text.encode()).hexdigest()[:12], 16) + self.draw
        self.draw += 1
        return EvalResult(score=true_score(x) + random.Random(seed).gauss(0.0, 0.3), metrics={"x": x})
"""

LAB = """[lab]
name = "noisy"
[backend]
class = "NoisyBackend"
eval_timeout = 30
[agent]
kind = "offline"
[run]
repeats = {repeats}
plateau_threshold = 0
"""


def true_score(x: float) -> float:
    return 0.01 * abs(x - 5.0)


def noisy_lab(root: Path, repeats: int) -> Path:
    lab = make_repo(root)
    (lab / "pipeline").mkdir()
    (lab / "pipeline" / "model.py").write_text("X = 1.0\n")
    (lab / "data").mkdir()
    (lab / "data" / "unused.txt").write_text("")
    (lab / "backend.py").write_text(BACKEND)
    (lab / "lab.toml").write_text(LAB.format(repeats=repeats))
    (lab / "AGENT.md").write_text("# noisy\n")
    (lab / ".gitignore").write_text(".arl/\n")
    git(lab, "add", "-A")
    git(lab, "commit", "-qm", "noisy lab")
    return lab


def false_keeps(lab: Path) -> tuple[int, int]:
    """Keeps whose true score is not better than the true score of what was kept before them."""
    current = true_score(1.0)
    keeps = false = 0
    for r in rows(lab):
        if r["outcome"] != "keep":
            continue
        text = git(lab, "show", f"{r['commit']}:pipeline/model.py")
        x = float(re.search(r"^X = (.*)$", text, re.M).group(1))  # type: ignore[union-attr]
        keeps += 1
        if true_score(x) >= current:
            false += 1
        current = true_score(x)
    return keeps, false


def test_repeats_keep_fewer_false_improvements(tmp_path: Path, base_image: str) -> None:
    counts = {}
    for repeats in (1, 3):
        lab = noisy_lab(tmp_path / f"r{repeats}", repeats)
        try:
            arl(
                "run",
                "--data",
                "data",
                "--max-iterations",
                "14",
                "--seed",
                "11",
                cwd=lab,
                timeout=400,
                env={"ARL_BASE_FROM": "debootstrap"},
            )
        finally:
            cleanup_containers(lab)
        check_history(lab, "noisy")
        keeps, false = false_keeps(lab)
        counts[repeats] = false
        TABLE.append([repeats, len(rows(lab)) - 1, keeps, false])
        if repeats == 3:
            vetoed = [r for r in rows(lab) if r["outcome"] == "vetoed"]
            assert all("by more than" in r["notes"] for r in vetoed)
    assert counts[1] >= 1, counts
    assert counts[3] < counts[1], counts
