"""Slots that scale when keeps are verified (real engine): with three slots, keeps are verified side by side in
containers of their own while the decider goes on deciding discards; the history keeps one writer, each keep judged
against the best at the moment it is recorded, and a run killed mid-verification loses and doubles nothing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from .conftest import BIN, git
from .loophelpers import check_history, run_arl, set_toml, start, wait_for

# The score is how far the pipeline's X is from 3; the run phase sleeps SLEEP seconds where the data is not mounted
# (the host's run container), so a test can make one verification slow.
BACKEND = """
import os, re, time
from pathlib import Path
from arl import SplitBackend

class KnobBackend(SplitBackend):
    def samples(self, data_dir):
        return ["knob"]
    def inputs(self, data_dir, sample_id):
        return None
    def predict(self, pipeline_dir, inputs):
        text = (pipeline_dir / "knob.py").read_text()
        if not os.path.exists("/workspace/data"):
            time.sleep(float(re.search(r"SLEEP = (\\S+)", text).group(1)))
        return float(re.search(r"X = (\\S+)", text).group(1))
    def score(self, data_dir, sample_id, output):
        return abs(float(output) - 3.0)
"""


# The knob lab: no example (`arl init --name knobs`), KnobBackend, three slots of the keeper agent.
KNOB_LAB = {
    "example": None,
    "init": ("--name", "knobs"),
    "files": {
        "backend.py": BACKEND,
        "pipeline/knob.py": "X = 40.0\nSLEEP = 0.0\n",
        "data/README": "the knob backend reads no data\n",
    },
    "agents": ("keeper_agent.py",),
    "settings": {
        "backend": {"class": "KnobBackend"},
        "agent": {"kind": "command", "command": ["python3", "-u", "/workspace/lab/keeper_agent.py"]},
        "run": {"agents": 3},
    },
}
pytestmark = [pytest.mark.docker, pytest.mark.lab(**KNOB_LAB)]
FLAGS = ["--iteration-timeout", "90", "--plateau-threshold", "0"]


def verify_windows(lab: Path, since: float) -> list[tuple[float, float, str]]:
    """(start, end, name) of the lab's verification containers, from the engine's own event log."""
    out = subprocess.run(
        ["docker", "events", "--since", str(int(since) - 1), "--until", str(int(time.time()) + 1),
         "--filter", "type=container", "--filter", "label=arl.role=verify", "--filter", f"label=arl.root={lab}",
         "--format", "{{json .}}"],
        capture_output=True, text=True, timeout=60,
    ).stdout  # fmt: skip
    began: dict[str, float] = {}
    spans = []
    for line in out.splitlines():
        ev = json.loads(line)
        name, at = ev["Actor"]["Attributes"]["name"], ev["timeNano"] / 1e9
        if ev["Action"] == "start":
            began[name] = at
        elif ev["Action"] == "die" and name in began:
            spans.append((began[name], at, name))
    return spans


def test_keeps_are_verified_side_by_side_and_recorded_in_order(lab: Path) -> None:
    t0 = time.time()
    proc = run_arl(lab, *FLAGS, "--max-iterations", "10", agent="command", timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rs = check_history(lab, "knobs")
    assert [int(r["id"]) for r in rs] == list(range(len(rs)))  # contiguous
    mine = rs[1:]
    assert len(mine) == 10, "; ".join(f"{r['id']} s{r['slot']} {r['outcome']} {r['notes'][:60]}" for r in mine)
    by_slot = {k: [r for r in mine if r["slot"] == k] for k in "012"}
    assert [r["outcome"] for r in by_slot["1"]] == ["keep"] * 3
    assert [r["outcome"] for r in by_slot["2"]] == ["discard"] * 6
    (overtaken,) = by_slot["0"]
    assert overtaken["outcome"] == "vetoed" and float(overtaken["verified_score"]) == pytest.approx(1.5)
    assert "the best is 0.5" in overtaken["notes"] or "the best is 0.2" in overtaken["notes"], overtaken["notes"]
    # slot 0's verdict came first, but the decider went on: slot 1's keep and slot 2's discards were recorded before it
    assert int(overtaken["id"]) > int(by_slot["1"][0]["id"]) and int(overtaken["id"]) > int(by_slot["2"][0]["id"])
    # every keep beat the best recorded before it; the branch is linear
    best = float(rs[0]["verified_score"])
    for r in mine:
        if r["outcome"] == "keep":
            assert float(r["verified_score"]) < best, r
            best = float(r["verified_score"])
    assert git(lab, "rev-list", "--merges", "HEAD").strip() == ""
    # the slow verification overlapped with another one (their containers' lifetimes, from the engine)
    spans = verify_windows(lab, t0)
    longest = max(spans, key=lambda s: s[1] - s[0])
    shown = [(round(a - t0, 1), round(b - t0, 1), n[-8:]) for a, b, n in spans]
    assert any(s is not longest and s[0] < longest[1] and s[1] > longest[0] for s in spans), shown


def test_kill_9_during_a_verification_then_resume(lab: Path, tmp_path: Path) -> None:
    set_toml(lab, "run", "agents", 2)
    set_toml(lab, "agent", "command", ["python3", "-u", "/workspace/lab/keeper_agent.py", "kill"])
    git(lab, "commit", "-qam", "the kill plan")
    argv = [str(BIN / "arl"), "run", "--data", "data", "--agent", "command", *FLAGS, "--max-iterations", "30"]
    proc = start(argv, lab, tmp_path / "run.log")
    state = lab / ".arl" / "state.json"

    def verifying() -> bool:
        try:
            st = json.loads(state.read_text())
        except (OSError, ValueError):
            return False
        return any(s.get("verifying") for s in (st.get("slots") or {}).values())

    wait_for(verifying, 180, "a verification running beside the decider")
    time.sleep(1)  # its container is up
    os.kill(proc.pid, signal.SIGKILL)  # arl run alone: its verification job lives in a session of its own
    proc.wait(30)
    resumed = run_arl(lab, *FLAGS, "--max-iterations", "2", agent="command", timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    rs = check_history(lab, "knobs")
    assert [int(r["id"]) for r in rs] == list(range(len(rs)))
    seqs = [(r["slot"], json.loads(r["metrics"] or "{}").get("verdict_seq"), r["run"]) for r in rs[1:]]
    decided = [s for s in seqs if s[1] is not None]
    assert len(decided) == len(set(decided)), seqs  # no verdict recorded twice
    slow = [r for r in rs if r["notes"].startswith("X=4.5")]
    assert len(slow) == 1 and slow[0]["outcome"] in ("keep", "vetoed"), slow  # recorded once, not lost
    assert float(slow[0]["verified_score"]) == pytest.approx(1.5)
    assert not list((lab / ".arl" / "verifications").glob("*.json"))
