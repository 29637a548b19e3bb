"""Scores a pipeline cannot touch: with the split backend, pipeline code that patches the scorer, reads the labels or
writes hostile outputs changes nothing the host records. Every check is made on the host against an independent
scorer (the honest model's mean absolute error, computed here). The same attacks against a single-phase backend
forge its scores: that is what the warning says, and it shows these checks can see a forgery."""

from __future__ import annotations

import csv
import json
import math
import subprocess
import textwrap
from pathlib import Path

import pytest

from tests.conftest import arl, git
from tests.loophelpers import rows, run_arl, set_toml

pytestmark = [
    pytest.mark.docker,
    pytest.mark.lab(agents=("forger_agent.py",), settings={"backend": {"max_output_mb": 1}}),
]

# The curve-fit example's backend before it was split: evaluate() imports the pipeline and scores it in one process.
SINGLE_PHASE = """
import csv, importlib.util
from pathlib import Path
from arl import EvalBackend, EvalResult, SampleResult

class CurveFitBackend(EvalBackend):
    def evaluate(self, pipeline_dir, data_dir, sample_ids=None):
        spec = importlib.util.spec_from_file_location("curve_model", Path(pipeline_dir) / "model.py")
        model = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(model)
        samples = []
        for path in sorted(Path(data_dir).glob("*.csv")):
            with open(path) as f:
                rows = [(float(r["x"]), float(r["y"])) for r in csv.DictReader(f)]
            pred = model.predict([x for x, _ in rows])
            samples.append(SampleResult(path.stem, sum(abs(p - y) for p, (_, y) in zip(pred, rows)) / len(rows)))
        return EvalResult(score=sum(s.score for s in samples) / len(samples), sample_results=samples)
"""

FORGERIES = ["json", "builtins", "math", "arl_classes", "gc_and_frames", "extra_files"]


def true_mae(height: float, folder: Path) -> float:
    """The independent scorer: the honest curve model's mean absolute error over the folder's samples."""
    maes = []
    for path in sorted(folder.glob("*.csv")):
        with open(path) as f:
            pts = [(float(r["x"]), float(r["y"])) for r in csv.DictReader(f)]
        pred = [height * math.tanh(0.3 * (x - 1.5)) for x, _ in pts]
        maes.append(sum(abs(p - y) for p, (_, y) in zip(pred, pts)) / len(pts))
    return sum(maes) / len(maes)


def make_holdout(lab: Path) -> Path:
    """More samples of the same kind, with answers the data folder does not have."""
    holdout = lab.parent / "holdout"
    holdout.mkdir()
    for i, path in enumerate(sorted((lab / "data").glob("*.csv"))[:4]):
        lines = path.read_text().splitlines()
        out = [lines[0]] + [f"{x},{float(y) + 0.25 * (i + 1):.5f}" for x, y in (ln.split(",") for ln in lines[1:])]
        (holdout / f"holdout_{i:02d}.csv").write_text("\n".join(out) + "\n")
    return holdout


def use_single_phase(lab: Path) -> None:
    (lab / "backend.py").write_text(textwrap.dedent(SINGLE_PHASE))
    git(lab, "commit", "-qam", "single-phase backend")


def run_attacks(lab: Path, *attacks: str, holdout: Path | None = None) -> tuple[list[dict[str, str]], str]:
    set_toml(lab, "agent", "command", ["python3", "-u", "/workspace/lab/forger_agent.py", *attacks])
    git(lab, "commit", "-qam", "the attacks")
    flags = ["--max-iterations", str(len(attacks)), "--iteration-timeout", "180", "--plateau-threshold", "99"]
    proc = run_arl(lab, *flags, *(["--holdout", str(holdout)] if holdout else []), agent="command", timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return [r for r in rows(lab) if r["outcome"] != "baseline"], proc.stderr


def test_pipeline_code_cannot_forge_the_verified_score(lab: Path) -> None:
    """A truly worse model (HEIGHT -50) whose import patches json, builtins, math/statistics, arl's classes, the
    objects gc and the caller's frames reach, or writes extra files: each verified at its true score, each vetoed."""
    done, _ = run_attacks(lab, *(f"forge:{a}" for a in FORGERIES))
    truth = true_mae(-50.0, lab / "data")
    assert truth > 30  # the baseline is 3.29: a forged keep would end the night
    assert [r["notes"].split("\\n")[0] for r in done] == [f"forge:{a}" for a in FORGERIES]
    for r in done:
        assert r["outcome"] == "vetoed", r
        assert math.isclose(float(r["verified_score"]), truth, rel_tol=1e-9), (r["notes"], r["verified_score"])
    assert "keep" not in {r["outcome"] for r in rows(lab)}
    assert git(lab, "log", "-1", "--format=%s").strip() == "the attacks"  # nothing was committed


def test_the_same_forgeries_fool_a_single_phase_backend(lab: Path) -> None:
    """What the split prevents, shown: in a single-phase backend the json attack forges the verified score, the leak
    reads the labels; and the run warns that such a backend's scores can be forged."""
    use_single_phase(lab)
    done, err = run_attacks(lab, "forge:json", "leak")
    assert "a pipeline can forge its verified and holdout scores" in err
    forged, leaked = done
    assert forged["outcome"] == "keep" and float(forged["verified_score"]) == pytest.approx(0.0001)
    assert float(leaked["verified_score"] or "nan") < 0.01 or leaked["outcome"] == "vetoed"


def test_pipeline_code_cannot_read_labels_or_holdout(lab: Path) -> None:
    """A pipeline that searches every path it can open (/workspace, /tmp, /proc/self/fd, its cwd, /) and its callers'
    frames for the answers: its verified and holdout scores are those of the same model without the lookup."""
    holdout = make_holdout(lab)
    done, _ = run_attacks(lab, "leak", holdout=holdout)
    (leak,) = done
    assert leak["outcome"] == "keep", leak["notes"]
    assert math.isclose(float(leak["verified_score"]), true_mae(1.02219, lab / "data"), rel_tol=1e-9)
    assert math.isclose(float(leak["holdout_score"]), true_mae(1.02219, holdout), rel_tol=1e-9)
    # the lookup works where labels are readable: the agent's own claim read its dev data; the host did not take it
    assert float(leak["score"]) < 0.5 * float(leak["verified_score"])


HOSTILE = {  # what the pipeline writes as its outputs, and what the veto's reason says
    "huge": "max_output_mb",
    "nested": "nested deeper",
    "nan": "NaN",
    "wrong_type": "expected a list",
    "symlink": "symlink",
    "fifo": "FIFO",
}


def test_hostile_outputs_fail_the_experiment_with_a_reason(lab: Path) -> None:
    """Outputs that are huge, deeply nested, NaN, of the wrong type, a symlink or a FIFO: each a vetoed experiment
    whose reason says what was wrong, the run going on; no copy left behind, the repository sound."""
    done, _ = run_attacks(lab, *(f"outputs:{k}" for k in HOSTILE))
    assert len(done) == len(HOSTILE), [r["notes"] for r in done]
    for r, (kind, expect) in zip(done, HOSTILE.items()):
        assert r["outcome"] == "vetoed", (kind, r)
        reason = r["notes"].split("[arl]", 1)[1]
        assert expect in reason, (kind, reason)
    assert not list((lab / ".arl" / "eval").iterdir())  # the host's copies are gone
    assert git(lab, "fsck", "--no-progress").strip() == ""


def test_host_eval_of_kept_code_runs_in_the_sandbox_unless_local(lab: Path, tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    done, _ = run_attacks(lab, f"marker:{marker}")
    assert done[0]["outcome"] == "keep", done
    assert not marker.exists()  # the verification ran in containers, where the marker code stays quiet anyway
    proc = arl("eval", "--data", "data", "--json", cwd=lab)
    assert json.loads(proc.stdout.splitlines()[-1])["score"] == pytest.approx(float(done[0]["verified_score"]))
    assert "sandbox image" in proc.stderr and not marker.exists()
    proc = arl("diagnose", "--data", "data", "--top", "1", cwd=lab)
    assert not marker.exists()
    arl("eval", "--data", "data", "--local", cwd=lab)
    assert marker.read_text() == "pipeline code ran on the host\n"


def test_the_run_container_never_sees_the_data(lab: Path) -> None:
    """The docker lines of a verification: the run phase mounts the pipeline and the inputs, never the data; the
    score phase mounts the data and the outputs, never the pipeline."""
    _, err = run_attacks(lab, "marker:/nonexistent/x")
    lines = [ln for ln in err.splitlines() if ln.startswith("+ docker run") and "--phase" in ln]
    runs = [ln for ln in lines if "--phase run" in ln]
    scores = [ln for ln in lines if "--phase score" in ln]
    assert runs and scores
    for ln in runs:
        assert "dst=/workspace/data" not in ln and "dst=/workspace/pipeline,readonly" in ln
        assert "--network none" in ln
    for ln in scores:
        assert "dst=/workspace/pipeline" not in ln and "dst=/workspace/data,readonly" in ln
    assert subprocess.run(["docker", "ps", "-aq", "--filter", f"label=arl.root={lab}"],
                          capture_output=True, text=True).stdout.strip() == ""  # fmt: skip
