"""Real Claude Code agents as SLURM jobs (the scripted API, the one fake; a real SLURM cluster started by the test):
each slot's API broker runs in its job beside the container, holds the credential there, counts per slot, and ends
with the job; `arl status` shows the jobs while they run."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from .claude_lab import (
    DONE_TURN,
    KEEP_TURN,
    RAISE_TURN,
    RUN_ARGS,
    Secrets,
    claude_image_fixture,  # noqa: F401  (a fixture)
    fake_api,
    lab_name,
    served_cost,
    status,
)
from .conftest import BIN, git
from .loophelpers import check_history, containers_of, set_toml, start, wait_for
from .slurm_cluster import ClusterFactory

pytestmark = [pytest.mark.docker, pytest.mark.lab(image="claude_image", own_name=True)]


def test_claude_slots_as_jobs_with_their_brokers(
    lab: Path,
    slurm_cluster: ClusterFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cluster = slurm_cluster(gpus=4)
    for key, value in cluster.env.items():
        monkeypatch.setenv(key, value)
    set_toml(lab, "run", "agents", 2)
    set_toml(lab, "engine", "kind", "slurm")
    git(lab, "commit", "-qam", "two Claude Code agents as SLURM jobs")
    script = [RAISE_TURN, KEEP_TURN, DONE_TURN]
    sec = Secrets()
    log = lab / "run.log"
    with fake_api(script, script) as api:
        for key, value in sec.env(api).items():
            monkeypatch.setenv(key, value)
        proc = start([str(BIN / "arl"), *RUN_ARGS, "--max-iterations", "2", "--", "--max-turns", "20"], lab, log)
        try:
            # while it runs, `arl status` names each slot's job and node
            shown = wait_for(lambda: _jobs_shown(lab), 120, "arl status to show two running jobs")
            assert proc.wait(400) == 0, log.read_text()[-4000:]
        finally:
            if proc.poll() is None:
                proc.kill()
        main = api.main_requests()
    text = log.read_text()
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
            assert sec.key.encode() not in path.read_bytes(), path
    assert [j for j in cluster.jobs() if j.comment.startswith("arl:")] == [] and containers_of(lab) == []
    assert "slot 0:" in shown and "slot 1:" in shown


def _jobs_shown(lab: Path) -> str | None:
    """`arl status` once it names two running jobs and their node (None until then)."""
    out = subprocess.run([str(BIN / "arl"), "status"], cwd=lab, capture_output=True, text=True).stdout
    return out if out.count("(job ") == 2 and " on " in out and "running)" in out else None
