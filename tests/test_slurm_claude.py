"""Real Claude Code agents as SLURM jobs (the scripted API, the one fake; a real SLURM cluster started by the test):
each slot's API broker runs in its job beside the container, holds the credential there, counts per slot, and ends
with the job; `arl status` shows the jobs while they run."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from .claude_lab import (
    claude_image_fixture,  # noqa: F401  (a fixture)
    lab_name,
    served_cost,
    slurm_run,
    status,
)
from .conftest import BIN
from .loophelpers import check_history, containers_of, wait_for
from .slurm_cluster import ClusterFactory

pytestmark = [pytest.mark.docker, pytest.mark.lab(image="claude_image", own_name=True)]


def test_claude_slots_as_jobs_with_their_brokers(
    lab: Path,
    slurm_cluster: ClusterFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cluster = slurm_cluster(gpus=4)
    with slurm_run(lab, cluster, monkeypatch, 2, "two Claude Code agents as SLURM jobs") as live:
        # while it runs, `arl status` names each slot's job and node
        shown = wait_for(lambda: _jobs_shown(lab), 120, "arl status to show two running jobs")
        assert live.proc.wait(400) == 0, live.log.read_text()[-4000:]
        main = live.api.main_requests()
    text = live.log.read_text()
    assert "API broker: one in each slot's SLURM job" in text, text[-3000:]
    assert {r.conversation for r in main} == {0, 1}  # one Claude Code process per slot, through its job's broker
    for k in (0, 1):
        assert "listening on unix:" in (lab / ".arl" / "logs" / f"broker-slot{k}.log").read_text()
    usage = [json.loads(ln) for ln in (lab / ".arl" / "logs" / "broker-usage.jsonl").read_text().splitlines()]
    assert {u.get("slot") for u in usage if "model" in u} == {0, 1}  # each job's broker counts its own slot
    check_history(lab, lab_name(lab))
    st = status(lab)  # what the API served, counted by the jobs' brokers, is the run's cost
    assert st["cost_usd"] > 0 and st["cost_usd"] == pytest.approx(served_cost(main), abs=1e-9 * len(main))
    # the brokers ended with their jobs; the credential never went into a file under .arl/
    assert subprocess.run(["pgrep", "-f", "arl.agents.brokered"], capture_output=True).returncode == 1
    for path in (lab / ".arl").rglob("*"):
        if path.is_file() and not path.is_symlink():
            assert live.sec.key.encode() not in path.read_bytes(), path
    assert [j for j in cluster.jobs() if j.comment.startswith("arl:")] == [] and containers_of(lab) == []
    assert "slot 0:" in shown and "slot 1:" in shown


def _jobs_shown(lab: Path) -> str | None:
    """`arl status` once it names two running jobs and their node (None until then)."""
    out = subprocess.run([str(BIN / "arl"), "status"], cwd=lab, capture_output=True, text=True).stdout
    return out if out.count("(job ") == 2 and " on " in out and "running)" in out else None
