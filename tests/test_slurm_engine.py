"""The SLURM engine on a real SLURM cluster (munged, slurmctld, slurmd started by the test, 4 or 1 placeholder GPUs
as gres): slots as jobs, every guarantee of the parallel-agents tests, GPUs from the scheduler, queued jobs,
scancel, kill -9 and resume, and a teardown that leaves no job and no container."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import BIN, git, run
from .loophelpers import check_history, containers_of, rows, run_arl, set_toml, start, wait_for
from .slurm_cluster import Cluster, ClusterFactory

pytestmark = pytest.mark.docker
ENV = {"ARL_BASE_FROM": "debootstrap"}
# One verdict, then the session ends: the slot's job ends and is submitted again, so jobs take turns on a GPU.
ONE_VERDICT = (
    'echo "slot=$ARL_SLOT gpu=${CUDA_VISIBLE_DEVICES:-none}" > /tmp/seen; arl eval >/dev/null; '
    'arl verdict discard --notes "$(cat /tmp/seen)"'
)


def slurm_lab(lab: Path, cluster: Cluster, monkeypatch: pytest.MonkeyPatch, agents: int = 2) -> Path:
    for key, value in cluster.env.items():
        monkeypatch.setenv(key, value)  # arl and the steps it runs talk to this cluster
    set_toml(lab, "run", "agents", agents)
    set_toml(lab, "engine", "kind", "slurm")
    set_toml(lab, "engine", "gres", "gpu:1")
    set_toml(lab, "engine", "gpu_mode", "env")  # placeholder GPUs: no device to hand to docker --gpus
    set_toml(lab, "engine", "partition", cluster.partition)
    git(lab, "commit", "-qam", "slots as SLURM jobs")
    return lab


def lab_jobs(cluster: Cluster, lab: Path) -> list[str]:
    return [j.id for j in cluster.jobs() if j.comment.startswith(f"arl:{lab.resolve()}:")]


def run_in_background(lab: Path, n: int) -> tuple[subprocess.Popen[bytes], Path]:
    """`arl run` of `n` experiments with the offline agent, in its own session; its output in run.log."""
    log = lab / "run.log"
    argv = ["run", "--data", "data", "--agent", "offline", "--seed", "3", "--plateau-threshold", "0"]
    return start([str(BIN / "arl"), *argv, "--max-iterations", str(n)], lab, log), log


def assert_clean(cluster: Cluster, lab: Path) -> None:
    assert lab_jobs(cluster, lab) == [], cluster.jobs()
    assert containers_of(lab) == []


def test_two_slots_as_jobs(lab: Path, slurm_cluster: ClusterFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    cluster = slurm_cluster(gpus=4)
    slurm_lab(lab, cluster, monkeypatch)
    code, out, err = run_arl(lab, "--plateau-threshold", "0", "--max-iterations", "12", timeout=600)
    assert code == 0, (out + err)[-4000:]
    rs = check_history(lab)
    assert [int(r["id"]) for r in rs] == list(range(len(rs)))  # contiguous
    decided = [r for r in rs[1:] if r["outcome"] in ("keep", "discard", "vetoed")]
    assert len(decided) >= 12 and {r["slot"] for r in rs[1:]} == {"0", "1"}, out
    keeps = [r for r in rs[1:] if r["outcome"] == "keep"]
    assert keeps and all(r["verified_score"] for r in keeps)  # every keep verified, as a step of its slot's job
    # the lines that ran: sbatch per slot, named after the lab and slot; the verification as a step of the job
    assert "sbatch --parsable --job-name=arl-curve-fit-r1-s0" in err and "--job-name=arl-curve-fit-r1-s1" in err
    assert "srun --jobid=" in err and "arl.loop.verifying" in err
    assert "scancel" in err
    assert_clean(cluster, lab)


def test_gpus_from_the_scheduler_and_a_queue(
    lab: Path, slurm_cluster: ClusterFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    cluster = slurm_cluster(gpus=1)  # one GPU for two slots: one of them waits in the queue
    slurm_lab(lab, cluster, monkeypatch)
    set_toml(lab, "agent", "command", ["sh", "-c", ONE_VERDICT])
    git(lab, "commit", "-qam", "one verdict per session")
    args = ["--plateau-threshold", "0", "--max-iterations", "4", "--max-restarts", "20"]
    code, out, err = run_arl(lab, *args, agent="command", timeout=600)
    assert code == 0, (out + err)[-4000:]
    assert "queued (Resources)" in out, out[-3000:]
    rs = check_history(lab)
    seen = [r["notes"] for r in rs[1:] if r["outcome"] == "discard"]
    # both slots ran, each in turn on the only GPU, and saw exactly it
    assert {s.split()[0] for s in seen} == {"slot=0", "slot=1"}, seen
    assert all(s.split()[1] == "gpu=0" for s in seen), seen
    assert_clean(cluster, lab)


def test_each_slot_sees_its_own_gpu(lab: Path, slurm_cluster: ClusterFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    cluster = slurm_cluster(gpus=4)
    slurm_lab(lab, cluster, monkeypatch)
    set_toml(lab, "agent", "command", ["sh", "-c", ONE_VERDICT + "; sleep 600"])  # the job holds its GPU
    git(lab, "commit", "-qam", "one verdict, then wait")
    code, out, err = run_arl(lab, "--plateau-threshold", "0", "--max-iterations", "2", agent="command", timeout=600)
    assert code == 0, (out + err)[-4000:]
    seen = {r["slot"]: r["notes"].split()[1] for r in check_history(lab)[1:] if r["outcome"] == "discard"}
    assert set(seen) == {"0", "1"} and len(set(seen.values())) == 2, seen  # one GPU each, not the same one
    # what each container saw is what its job was given
    given = [json.loads(p.read_text())["gpus"] for p in (lab / ".arl" / "engine").glob("*.status.json")]
    assert sorted(f"gpu={g}" for g in given) == sorted(seen.values()), (given, seen)
    assert_clean(cluster, lab)


def test_scancel_relaunches_the_slot(lab: Path, slurm_cluster: ClusterFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    cluster = slurm_cluster(gpus=4)
    slurm_lab(lab, cluster, monkeypatch)
    proc, log = run_in_background(lab, 10)
    try:
        wait_for(lambda: len(rows(lab)) >= 3, 300, "three experiments")
        victim = wait_for(
            lambda: next((j for j in cluster.jobs() if j.name.endswith("-s0") and j.state == "RUNNING"), None),
            120,
            "slot 0's running job",
        )
        cluster.run("scancel", victim.id)
        assert proc.wait(600) == 0, log.read_text()[-4000:]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    text = log.read_text()
    # the job as squeue saw it (CANCELLED), or the signal its runner got while the job was still completing
    ended = [f"(scheduler); the scheduler ended its job: {how} (job {victim.id})" for how in ("CANCELLED", "SIGTERM")]
    assert any(e in text for e in ended), text[-3000:]
    rs = check_history(lab)
    assert [int(r["id"]) for r in rs] == list(range(len(rs)))
    assert not [r for r in rs if r["outcome"] == "crash"], rs  # a job the scheduler ended is no crash
    assert_clean(cluster, lab)


def test_kill9_and_resume(lab: Path, slurm_cluster: ClusterFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    cluster = slurm_cluster(gpus=4)
    slurm_lab(lab, cluster, monkeypatch)
    proc, log = run_in_background(lab, 30)
    try:
        wait_for(lambda: len(rows(lab)) >= 3 and len(lab_jobs(cluster, lab)) == 2, 300, "experiments and 2 jobs")
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert len(lab_jobs(cluster, lab)) == 2  # the jobs outlive a killed arl run
    code, out, err = run_arl(lab, "--plateau-threshold", "0", "--max-iterations", "3", timeout=600)
    assert code == 0, (out + err)[-4000:]
    assert "repairing its state" in err, err[-3000:]
    rs = check_history(lab)
    assert [int(r["id"]) for r in rs] == list(range(len(rs)))
    assert_clean(cluster, lab)


def test_make_research_runs_the_slots_as_jobs(
    lab: Path, slurm_cluster: ClusterFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    cluster = slurm_cluster(gpus=4)
    slurm_lab(lab, cluster, monkeypatch)
    args = "--agent offline --seed 3 --plateau-threshold 0 --max-iterations 6"
    proc = run(["make", "research", "DATA=data", f"ARGS={args}"], cwd=lab, check=False, env=ENV, timeout=600)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    text = proc.stdout + proc.stderr
    assert "+ sbatch --parsable --job-name=arl-curve-fit-r1-s1" in text and "stop: max_iterations" in text
    rs = check_history(lab)
    assert [int(r["id"]) for r in rs] == list(range(len(rs))) and {r["slot"] for r in rs[1:]} == {"0", "1"}
    assert_clean(cluster, lab)


def test_the_probe_says_what_is_missing(
    lab: Path, slurm_cluster: ClusterFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    cluster = slurm_cluster(gpus=1)
    slurm_lab(lab, cluster, monkeypatch)

    def probe(image: str, **env: str) -> subprocess.CompletedProcess[str]:
        code = "from arl.engines.slurm import Slurm; from arl.engines.slurm_probe import probe; "
        code += f"from arl.config.context import open_lab; print(probe(Slurm(open_lab({str(lab)!r})), {image!r}, 900))"
        return run([sys.executable, "-c", code], cwd=lab, check=False, env=env)

    assert "probe job: the node sees the lab's folder and the image" in probe("arl-agent-base:latest").stdout
    missing = probe("arl-no-such-image:1")
    assert "the image arl-no-such-image:1 is not on the node" in missing.stderr, missing.stderr[-2000:]
    broken = probe("arl-agent-base:latest", SLURM_CONF=str(cluster.root / "missing.conf"))
    assert "the probe job failed" in broken.stderr, broken.stderr[-2000:]
