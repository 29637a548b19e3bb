"""The split backend in this machine's processes (`arl eval` in the sandbox, or --local): each phase its own process,
so pipeline code cannot reach the scorer here either; hostile outputs and broken backends are one-line errors."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from tests.agents.forger_agent import FORGE, HONEST
from tests.conftest import arl
from tests.test_config import one_line_error
from tests.test_forgery import FORGERIES, true_mae


@pytest.mark.parametrize("attack", FORGERIES)
def test_local_eval_scores_a_forging_pipeline_at_its_true_score(example_lab: Path, attack: str) -> None:
    (example_lab / "pipeline" / "model.py").write_text(HONEST.format(height=-50.0) + FORGE[attack])
    out = json.loads(arl("eval", "--data", "data", "--json", cwd=example_lab).stdout.splitlines()[-1])
    assert out["score"] == pytest.approx(true_mae(-50.0, example_lab / "data"), rel=1e-9)


def test_outputs_that_are_not_files_fail_the_evaluation(example_lab: Path) -> None:
    (example_lab / "pipeline" / "model.py").write_text(
        HONEST.format(height=1.0)
        + textwrap.dedent("""
        import os, sys
        def predict(xs):
            frame = sys._getframe()
            while "outputs_dir" not in frame.f_locals:
                frame = frame.f_back
            for out in frame.f_locals["outputs_dir"].iterdir():
                if not (out / "output.json").exists():
                    os.mkfifo(out / "output.json")
            raise RuntimeError("a FIFO in place of each output")
        """)
    )
    proc = arl("eval", "--data", "data", cwd=example_lab, check=False, timeout=60)
    one_line_error(proc, "outputs:", "output.json is a FIFO, not a regular file")


SPLIT = """
from pathlib import Path
from arl import SplitBackend

class CurveFitBackend(SplitBackend):
    def samples(self, data_dir):
        return {samples}
    def inputs(self, data_dir, sample_id):
        return {{"id": sample_id}}
    def predict(self, pipeline_dir, inputs):
        if inputs["id"] == "b":
            raise ValueError("b is too hard")
        return 1.0
    def score(self, data_dir, sample_id, output):
        return float(output)
"""


@pytest.mark.parametrize(
    ("samples", "needles"),
    [
        ('["a", "b"]', ["sample b failed", "ValueError: b is too hard"]),  # failed_sample_score None: all fails
        ('["a", "../etc"]', ["sample id '../etc' cannot be a folder name"]),
        ('["a", "a"]', ["the same id twice"]),
    ],
)
def test_backend_problems_are_one_line_errors(example_lab: Path, samples: str, needles: list[str]) -> None:
    (example_lab / "backend.py").write_text(textwrap.dedent(SPLIT.format(samples=samples)))
    one_line_error(arl("eval", "--data", "data", cwd=example_lab, check=False), "evaluation failed", *needles)


def test_sample_filter_and_failed_sample_score(example_lab: Path) -> None:
    head = "class CurveFitBackend(SplitBackend):"
    text = textwrap.dedent(SPLIT.format(samples='["a", "b", "c"]'))
    (example_lab / "backend.py").write_text(text.replace(head, f"{head}\n    failed_sample_score = 7.0"))
    out = json.loads(arl("eval", "--data", "data", "--json", cwd=example_lab).stdout)
    assert out["score"] == pytest.approx(3.0) and out["metrics"]["failed"] == 1  # (1 + 7 + 1) / 3
    one = json.loads(arl("diagnose", "--data", "data", "--sample", "c", "--json", cwd=example_lab).stdout)
    assert [s["sample_id"] for s in one["samples"]] == ["c"] and one["score"] == 1.0
    one_line_error(arl("eval", "--data", "data", "--sample", "zz", cwd=example_lab, check=False), "no sample 'zz'")
