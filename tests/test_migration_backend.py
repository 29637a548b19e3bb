"""A backend written for autoresearch-lab runs unchanged: its import path is a thin alias of arl's API."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

from tests.conftest import arl, git, make_repo

# As autoresearch-lab's docs and templates write them: with and without sample_ids, frozen-dataclass style use.
NEW_STYLE = """
from pathlib import Path
from autoresearch_lab.harness.backend import EvalBackend, EvalResult, SampleResult

class Backend(EvalBackend):
    def setup(self) -> None:
        self.factor = 2.0

    def evaluate(self, pipeline_dir: Path, data_dir: Path, sample_ids: list[str] | None = None) -> EvalResult:
        value = float((pipeline_dir / "value.txt").read_text())
        ids = sample_ids or sorted(p.stem for p in data_dir.glob("*.txt"))
        samples = [SampleResult(sample_id=s, score=value, extra={"file": s}) for s in ids]
        return EvalResult(score=value * self.factor, metrics={"accuracy": 0.958}, sample_results=samples)
"""

OLD_STYLE = """
from pathlib import Path
from autoresearch_lab.harness.backend import EvalBackend, EvalResult, SampleResult

class Backend(EvalBackend):
    def evaluate(self, pipeline_dir: Path, data_dir: Path) -> EvalResult:
        value = float((pipeline_dir / "value.txt").read_text())
        return EvalResult(score=value, sample_results=[SampleResult("a", value, error="too high")])
"""


def _lab(root: Path, backend: str) -> Path:
    repo = make_repo(root)
    arl("init", "--name", "migrated", cwd=repo)
    (repo / "backend.py").write_text(textwrap.dedent(backend))
    text = (repo / "lab.toml").read_text().replace('class = "PipelineBackend"', 'class = "Backend"')
    (repo / "lab.toml").write_text(text)
    (repo / "pipeline" / "value.txt").write_text("0.25\n")
    (repo / "data").mkdir()
    for name in ("a", "b"):
        (repo / "data" / f"{name}.txt").write_text(name)
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "migrated lab")
    return repo


def test_an_autoresearch_lab_backend_runs_through_arl_eval(tmp_path: Path) -> None:
    lab = _lab(tmp_path / "repo", NEW_STYLE)
    proc = arl("eval", "--data", "data", "--json", cwd=lab)
    out = json.loads(proc.stdout)
    assert out["score"] == 0.5 and out["metrics"]["accuracy"] == 0.958
    # a single-phase backend scores in the pipeline's process: said once, plainly
    warnings = [ln for ln in proc.stderr.splitlines() if ln.startswith("arl: warning:")]
    assert len(warnings) == 1 and "can forge its verified and holdout scores" in warnings[0], proc.stderr
    one = json.loads(arl("diagnose", "--data", "data", "--sample", "b", "--json", cwd=lab).stdout)
    assert one["samples"] == [{"sample_id": "b", "score": 0.25, "error": None, "extra": {"file": "b"}}]


def test_an_old_backend_without_sample_ids_runs_too(tmp_path: Path) -> None:
    lab = _lab(tmp_path / "repo", OLD_STYLE)
    out = json.loads(arl("eval", "--data", "data", "--json", cwd=lab).stdout)
    assert out["score"] == 0.25
    one = json.loads(arl("diagnose", "--data", "data", "--json", cwd=lab).stdout)
    assert one["samples"][0]["error"] == "too high"


def test_the_alias_is_arls_api() -> None:
    import arl
    from autoresearch_lab.harness import backend

    assert backend.EvalResult is arl.EvalResult and backend.SampleResult is arl.SampleResult
    assert issubclass(backend.EvalBackend, arl.EvalBackend)


def test_the_sandbox_image_carries_the_alias(tmp_path: Path) -> None:
    from arl.sandbox import images

    images._write_base_context(tmp_path / "ctx")
    assert (tmp_path / "ctx/rootfs/opt/arl/lib/autoresearch_lab/harness/backend.py").is_file()
