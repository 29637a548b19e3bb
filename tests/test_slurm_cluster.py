"""The private SLURM cluster the SLURM engine's tests run on: GPUs as gres, queueing, job names and comments,
steps inside a full allocation (how the engine reaches a slot's container on its node), and a clean stop."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, docker_answers, skip_unless_required
from tests.slurm_cluster import Cluster, ClusterFactory, processes_using

pytestmark = pytest.mark.docker  # a real cluster, like the real-engine tests: `make test-fast` leaves it out


def hold(cluster: Cluster, tmp: Path, name: str, *sbatch_args: str, step: str = "") -> str:
    """Submit a job that writes its GPU variables to tmp/<name>.env and runs until tmp/<name>.release exists."""
    body = (
        f'echo "CVD=$CUDA_VISIBLE_DEVICES JOB_GPUS=$SLURM_JOB_GPUS" > {tmp / name}.env.part && '
        f"mv {tmp / name}.env.part {tmp / name}.env && "
        f"while [ ! -e {tmp / name}.release ]; do sleep 0.1; done"
    )
    wrap = f"{step} sh -c '{body}'" if step else body
    args = ["sbatch", "--parsable", "-o", f"{tmp / name}.out", "--job-name", name, *sbatch_args, "--wrap", wrap]
    return cluster.run(*args).stdout.strip().split(";")[0]


def running(cluster: Cluster, tmp: Path, name: str, *sbatch_args: str) -> str:
    """hold(), once the job runs."""
    job_id = hold(cluster, tmp, name, *sbatch_args)
    cluster.wait_for(lambda: state_of(cluster, job_id) == "RUNNING", 30, f"job {name} running")
    return job_id


def gpu_env(cluster: Cluster, tmp: Path, name: str) -> dict[str, str]:
    env = tmp / f"{name}.env"
    cluster.wait_for(env.exists, 30, f"{env} written by the job")
    return dict(item.split("=", 1) for item in env.read_text().split())


def state_of(cluster: Cluster, job_id: str) -> str:
    job = cluster.job(job_id)
    return job.state if job else "GONE"


def release(cluster: Cluster, tmp: Path, *names: str) -> None:
    for name in names:
        (tmp / f"{name}.release").touch()
    cluster.wait_for(lambda: not cluster.jobs(), 30, f"jobs {names} to end")


def test_srun_with_one_gpu_sees_one_index(slurm_cluster: ClusterFactory) -> None:
    cluster = slurm_cluster(gpus=4)
    out = cluster.run("srun", "--gres=gpu:1", "env").stdout
    visible = re.search(r"^CUDA_VISIBLE_DEVICES=(.*)$", out, re.M)
    assert visible and visible.group(1) in {"0", "1", "2", "3"}, out


def test_two_concurrent_jobs_get_different_gpus(slurm_cluster: ClusterFactory, tmp_path: Path) -> None:
    cluster = slurm_cluster(gpus=4)
    ids = [hold(cluster, tmp_path, name, "--gres=gpu:1", "-c1") for name in ("a", "b")]
    # both submitted before either is waited for: they run at the same time
    cluster.wait_for(lambda: all(state_of(cluster, i) == "RUNNING" for i in ids), 30, "both jobs running")
    envs = [gpu_env(cluster, tmp_path, name) for name in ("a", "b")]
    assert {e["CVD"] for e in envs} == {e["JOB_GPUS"] for e in envs}
    assert len({e["CVD"] for e in envs}) == 2 and all(e["CVD"].isdigit() for e in envs), envs
    # the controller names each job's node and GPU index (what `arl status` and the engine read)
    for job_id, env in zip(ids, envs):
        shown = cluster.run("scontrol", "-d", "show", "job", job_id).stdout
        assert f"NodeList={cluster.node}" in shown
        assert f"GRES=gpu:1(IDX:{env['CVD']})" in shown, shown
    release(cluster, tmp_path, "a", "b")


def test_one_gpu_for_two_jobs_queues_the_second_until_the_first_ends(
    slurm_cluster: ClusterFactory, tmp_path: Path
) -> None:
    cluster = slurm_cluster(gpus=1)
    running(cluster, tmp_path, "first", "--gres=gpu:1", "-c1")
    second = hold(cluster, tmp_path, "second", "--gres=gpu:1", "-c1")

    def queued_for_resources() -> bool:
        job = cluster.job(second)
        return job is not None and job.state == "PENDING" and job.reason == "Resources"

    cluster.wait_for(queued_for_resources, 30, "the second job pending (Resources)")
    (tmp_path / "first.release").touch()
    cluster.wait_for(lambda: state_of(cluster, second) == "RUNNING", 30, "the second job running")
    assert gpu_env(cluster, tmp_path, "second")["CVD"] == "0"
    release(cluster, tmp_path, "second")


def test_name_and_comment_show_in_squeue_and_scancel_ends_the_job(
    slurm_cluster: ClusterFactory, tmp_path: Path
) -> None:
    cluster = slurm_cluster(gpus=1)
    job_id = running(cluster, tmp_path, "arl-lab1-slot0", "--comment", "arl lab=lab1 slot=0")
    job = cluster.job(job_id)
    assert job and (job.name, job.comment, job.node) == ("arl-lab1-slot0", "arl lab=lab1 slot=0", cluster.node)
    listed = cluster.run("squeue", "-h", "-o", "%i %j %k").stdout
    assert f"{job_id} arl-lab1-slot0 arl lab=lab1 slot=0" in listed
    cluster.run("scancel", job_id)
    cluster.wait_for(lambda: not cluster.jobs(), 30, "the cancelled job gone from squeue")
    # no accounting here (no sacct): how a job ended stays in scontrol for MinJobAge (300 s)
    assert "JobState=CANCELLED" in cluster.run("scontrol", "show", "job", job_id).stdout


def test_a_step_reaches_a_job_that_holds_all_its_cpus_and_gpus(slurm_cluster: ClusterFactory, tmp_path: Path) -> None:
    cluster = slurm_cluster(gpus=4)
    full = f"--gres=gpu:{cluster.gpus} -c{cluster.cpus}"
    job_id = hold(cluster, tmp_path, "full", *full.split(), step=f"srun {full}")
    cluster.wait_for(
        lambda: f"{job_id}.0" in cluster.run("squeue", "-h", "-s", "-o", "%i").stdout, 30, "the job's step 0"
    )
    assert gpu_env(cluster, tmp_path, "full")["CVD"] == ",".join(str(i) for i in range(cluster.gpus))
    for flags in (["--overlap"], ["--overlap", "--gres=none"]):
        out = cluster.run("srun", f"--jobid={job_id}", *flags, "hostname", timeout=20).stdout
        assert out.strip() == cluster.node, flags
    release(cluster, tmp_path, "full")


def test_docker_answers_inside_a_job(slurm_cluster: ClusterFactory) -> None:
    if not docker_answers():
        skip_unless_required("no Docker engine answers")
    cluster = slurm_cluster(gpus=1)
    proc = cluster.run("srun", "--gres=gpu:1", "docker", "version", "--format", "{{.Server.Version}}")
    assert proc.stdout.strip()


def test_stop_leaves_no_daemon_or_job_process(slurm_cluster: ClusterFactory, tmp_path: Path) -> None:
    cluster = slurm_cluster(gpus=4)
    running(cluster, tmp_path, "long", "--gres=gpu:1")
    gpu_env(cluster, tmp_path, "long")
    before = processes_using(cluster.root)
    assert len(before) >= 4, before  # munged, slurmctld, slurmd, the job's slurmstepd and script
    cluster.stop()
    assert [pid for pid in before if alive(pid)] == []
    assert processes_using(cluster.root) == [] and not cluster.root.exists()


def alive(pid: int) -> bool:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return False
    return fields[0] != "Z"  # a zombie has ended; only its parent has not collected it yet


def test_a_killed_test_runs_cluster_is_reaped_by_the_next_start(slurm_cluster: ClusterFactory, tmp_path: Path) -> None:
    script = (
        "import sys, time\n"
        "from tests.slurm_cluster import start_cluster\n"
        "c = start_cluster(1)\n"
        f"c.run('sbatch', '-o', '{tmp_path}/out', '--wrap', 'sleep 600')\n"
        "c.wait_for(lambda: [j.state for j in c.jobs()] == ['RUNNING'])\n"
        "print(c.root, flush=True)\n"
        "time.sleep(600)\n"
    )
    owner = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert owner.stdout is not None
        root = Path(owner.stdout.readline().strip())
        left = processes_using(root)
        assert len(left) >= 5, left  # munged, slurmctld, slurmd, slurmstepd, the job's script and sleep
    finally:
        owner.kill()  # as a crashed or killed pytest would end, leaving its cluster behind
        owner.wait()
    assert all(alive(pid) for pid in left)
    slurm_cluster(gpus=1)
    assert [pid for pid in left if alive(pid)] == [] and not root.exists()
