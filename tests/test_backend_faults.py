"""A backend that fails during the loop (raises, returns NaN or the wrong type, hangs past eval_timeout, kills its
own process) becomes a vetoed or crash row with the reason in its notes, never a dead loop: the run ends by its
stopping condition. A pipeline that fails at baseline is a one-line error, with no container left behind.

The backend fails on cue: only for the host's verification of a changed pipeline (ARL_SANDBOX is "1" in the agent's
and the verification's containers alike, ARL_CONTROL only in the agent's), or only in the agent's sandbox, or
always. The unchanged pipeline is recognised by the hash of its model.py."""

from __future__ import annotations

import hashlib
import json
import os
import textwrap
from pathlib import Path

import pytest

from .conftest import arl, git
from .loophelpers import check_history, containers_of, rows, run_arl, set_toml
from .test_forgery import SINGLE_PHASE

pytestmark = pytest.mark.docker

FAULTY = '''"""The curve-fit backend, failing on cue (written by tests/test_backend_faults.py)."""
import hashlib
import os
import time
from pathlib import Path

from arl import EvalResult
from curvefit_backend import CurveFitBackend

FAULT = {fault!r}
WHERE = {where!r}
ORIGINAL = {original!r}


class FaultyBackend(CurveFitBackend):
    def evaluate(self, pipeline_dir, data_dir, sample_ids=None):
        in_agent = "ARL_CONTROL" in os.environ
        changed = hashlib.sha256((Path(pipeline_dir) / "model.py").read_bytes()).hexdigest() != ORIGINAL
        hit = {{"verify": changed and not in_agent, "agent": in_agent, "always": True}}[WHERE]
        if hit:
            if FAULT == "raise":
                raise RuntimeError("injected backend failure")
            if FAULT == "nan":
                return EvalResult(score=float("nan"))
            if FAULT == "wrong-type":
                return {{"score": 1.0}}
            if FAULT == "hang":
                time.sleep(3600)
            if FAULT == "kill-self":
                os.kill(os.getpid(), 9)
        return super().evaluate(pipeline_dir, data_dir, sample_ids)
'''
EVAL_TIMEOUT = 5


def faulty_lab(lab: Path, fault: str, where: str) -> str:
    """Install the failing backend in the example lab; returns the lab's (unique) name."""
    # single-phase: the faults are injected in evaluate(), which a SplitBackend (the example's) never has called
    (lab / "curvefit_backend.py").write_text(textwrap.dedent(SINGLE_PHASE))
    original = hashlib.sha256((lab / "pipeline" / "model.py").read_bytes()).hexdigest()
    (lab / "backend.py").write_text(FAULTY.format(fault=fault, where=where, original=original))
    set_toml(lab, "backend", "class", "FaultyBackend")
    set_toml(lab, "backend", "eval_timeout", EVAL_TIMEOUT)
    # A name of its own: container names derive from the lab's name, and other labs may run on this engine.
    name = f"curve-fit-{os.urandom(3).hex()}"
    set_toml(lab, "lab", "name", name)
    git(lab, "add", "-A")
    git(lab, "commit", "-qm", f"faulty backend: {fault} ({where})")
    return name


def run_faulty(lab: Path, *args: str) -> tuple[int, str, str]:
    """The offline agent, seed 1 (its first proposals are keeps), no plateau stop, command lines hidden."""
    return run_arl(lab, "--plateau-threshold", "0", *args, seed=1, env={"ARL_QUIET": "1"})


@pytest.mark.parametrize(
    ("fault", "words"),
    [
        ("raise", ["FaultyBackend.evaluate() raised RuntimeError: injected backend failure"]),
        ("nan", ["non-finite score"]),
        ("wrong-type", ["returned dict, not EvalResult"]),
        ("hang", [f"eval_timeout ({EVAL_TIMEOUT} s)"]),
        ("kill-self", ["the evaluation process died", "without a result"]),
    ],
)
def test_backend_failing_in_the_hosts_verification_vetoes_the_keep(lab: Path, fault: str, words: list[str]) -> None:
    name = faulty_lab(lab, fault, "verify")
    code, out, err = run_faulty(lab, "--max-iterations", "3")
    assert code == 0, (out + err)[-4000:]
    assert "stop: max_iterations" in out, (out + err)[-4000:]
    assert "Traceback" not in out + err
    rs = check_history(lab, name)
    assert [r["outcome"] for r in rs][0] == "baseline"
    later = rs[1:]
    assert len(later) == 3 and all(r["outcome"] in ("vetoed", "discard") for r in later), later
    vetoed = [r for r in later if r["outcome"] == "vetoed"]
    assert vetoed, "the offline agent proposes keeps early with this seed; each must be vetoed"
    for r in vetoed:
        assert r["verified_score"] == "" and r["score"] != "", r
        for word in words:
            assert word in r["notes"], r["notes"]
    assert not containers_of(lab)
    status = json.loads(arl("status", "--json", cwd=lab).stdout)
    assert status["active"] is False


def test_backend_failing_in_the_agents_sandbox_is_a_crash_and_the_run_stops(lab: Path) -> None:
    name = faulty_lab(lab, "raise", "agent")
    code, out, err = run_faulty(lab, "--max-iterations", "10", "--max-restarts", "1")
    assert code == 1 and "all 2 experiments of run 1 crashed" in err, (out + err)[-4000:]
    assert "stop: max_restarts" in out, (out + err)[-4000:]
    rs = check_history(lab, name)
    assert [r["outcome"] for r in rs] == ["baseline", "crash", "crash"], rs
    assert all("exited with code 1" in r["notes"] for r in rs[1:]), rs
    # Why it died is in the agent's transcript, saved by the host.
    transcripts = "".join(p.read_text() for p in (lab / ".arl" / "logs").glob("*.jsonl"))
    assert "injected backend failure" in transcripts
    assert not containers_of(lab)


def test_baseline_failure_is_one_line_and_leaves_nothing(lab: Path) -> None:
    faulty_lab(lab, "raise", "always")
    code, out, err = run_faulty(lab, "--max-iterations", "3")
    errors = [ln for ln in err.splitlines() if ln.startswith("arl: error:")]
    assert code == 1, out + err
    assert "Traceback" not in out + err
    assert len(errors) == 1 and errors[0] == err.strip().splitlines()[-1], err
    assert "the unmodified pipeline does not evaluate" in errors[0]
    assert "injected backend failure" in errors[0]
    assert rows(lab) == []
    assert not containers_of(lab)
    assert not (lab / ".arl" / "lock").exists()
    status = json.loads(arl("status", "--json", cwd=lab).stdout)
    assert status["active"] is False
    assert git(lab, "status", "--porcelain", "--untracked-files=all", "--", "pipeline") == ""
