"""`python -m arl.engines.slurm_job SPEC`: a slot's agent inside its SLURM job, on the node (started by sbatch).

It adds the GPUs the scheduler gave the job to the `docker run` line arl built, runs it with the agent's stdout
appended to the transcript (on the shared folder), and writes how the container ended to the status file. The
container is the engine's child, not the job's: when the job is cancelled, times out or is preempted (SIGTERM from
the scheduler), this runner stops it (SIGINT to the agent, then harder) before the job's processes are killed."""

from __future__ import annotations

import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from arl.errors import ArlError
from arl.sandbox import containers
from arl.sandbox.gpus import allocated_gpus, gpu_args
from arl.util import sh
from arl.util.fsutil import atomic_write

GRACE = 3.0  # within SLURM's KillWait (30 s by default): the container is gone before the job's end


def main(argv: list[str]) -> int:
    spec: dict[str, Any] = json.loads(Path(argv[0]).read_text())
    name, status = spec["name"], Path(spec["status"])
    os.environ["ARL_RUNTIME"] = spec.get("runtime", "docker")
    signalled: list[str] = []

    def on_signal(signum: int, _frame: object) -> None:
        signalled.append(signal.Signals(signum).name.removeprefix("SIG"))

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1, signal.SIGHUP):
        signal.signal(sig, on_signal)
    gpus = allocated_gpus(os.environ)
    job = os.environ.get("SLURM_JOB_ID", "")
    args = list(spec["argv"])
    # the job's GPUs, and its id: a later job on this node finds a container whose job died without stopping it
    args[1:1] = [*gpu_args(gpus, spec.get("gpu_mode", "docker")), "--label", f"arl.job={job}"]
    cmd = [spec.get("runtime", "docker"), *args]
    beside = "relay" if spec.get("relay") else "broker" if spec.get("broker") else ""
    # `pid`: the runner, whose children are what the job runs beside the container (its broker, or its relay)
    info: dict[str, Any] = {
        "job": job,
        "node": socket.gethostname(),
        "gpus": gpus,
        "pid": os.getpid(),
        "beside": beside,
    }
    sh.echo(f"{shlex.join(cmd)} >> {shlex.quote(spec['transcript'])}")
    containers.stop(name, grace=1)  # a leftover of the same name on this node (a requeued job)
    remove_orphans(spec.get("root", ""))
    try:
        broker = _start_beside(spec.get(beside) if beside else None, beside)
    except ArlError as e:
        _write(status, {**info, "state": "exited", "exit_code": None, "error": str(e)})
        return 0
    transcript = Path(spec["transcript"])
    transcript.parent.mkdir(parents=True, exist_ok=True)
    with open(transcript, "ab") as out, open(transcript.with_suffix(".docker-run.err"), "ab") as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, stdin=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 120
    while not containers.state(name).exists and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    info["running_at"] = time.time()
    _write(status, {**info, "state": "running"})
    while proc.poll() is None and not signalled:
        time.sleep(0.2)
    if signalled:
        containers.stop(name, grace=GRACE)  # the scheduler ends the job: the agent saves and exits first
    proc.wait()
    if broker:
        broker.terminate()
        broker.wait(10)
    cs = containers.state(name)
    tail = containers.stderr_tail(name, 5) if cs.exists else ""
    containers.stop(name, grace=1)
    _write(
        status,
        {
            **info,
            "state": "exited",
            "exit_code": cs.exit_code if cs.exists else proc.returncode,
            "oom": cs.oom_killed,
            "error": cs.error,
            "stderr_tail": tail,
            "signal": signalled[0] if signalled else "",
        },
    )
    return 0


def remove_orphans(root: str) -> None:
    """The lab's agent containers on this node whose job has ended: a job killed (a node's hiccup, SIGKILL after
    SLURM's KillWait) before its runner could stop its container leaves it running, owned by no one."""
    if not root:
        return
    fmt = '{{.Names}} {{.Label "arl.job"}}'
    ls = sh.docker()["ps", "--filter", f"label=arl.root={root}", "--filter", "label=arl.job", "--format", fmt]
    code, out, _ = sh.run(ls, ok=None, quiet=True)
    for line in out.splitlines() if code == 0 else []:
        name, _, job = line.partition(" ")
        code, state, err = sh.run(sh.tool("squeue")["-h", "-j", job, "-o", "%T"], ok=None, quiet=True)
        ended = "Invalid job id" in err if code else state.strip() not in ("RUNNING", "COMPLETING", "SUSPENDED")
        if job.isdigit() and ended:  # (no word from the controller: nothing is concluded)
            sh.say(f"removing {name}: its job {job} has ended")
            containers.stop(name, grace=0)


def _start_beside(spec: dict[str, Any] | None, what: str) -> subprocess.Popen[bytes] | None:
    """The slot's API broker, beside its container and outside it, with the job's environment (the credential); or
    its relay to the broker on the submitting host (`[engine] broker = "submit-host"`), which holds no credential."""
    if not spec:
        return None
    sock = Path(spec.get("ready") or spec["socket"])  # the relay's socket is ready once its mode is set
    sock.unlink(missing_ok=True)
    proc = sh.spawn(spec["argv"], spec["log"], own_session=False)  # it ends with the job
    if not sh.wait_ready(proc, sock.exists, 15):
        proc.kill()
        raise ArlError(f"the API {what} did not start on {socket.gethostname()}; see {spec['log']}")
    if what == "relay":
        from arl.broker.relay import knock

        why = knock(spec)
        if why:
            proc.kill()
            raise ArlError(why)
    return proc


def _write(path: Path, data: dict[str, Any]) -> None:
    atomic_write(path, json.dumps(data), fsync=True)  # read on another host: on the disk before the job ends


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
