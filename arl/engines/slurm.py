"""The SLURM engine: each slot's agent runs in a SLURM job that starts the same hardened container on its node.

The lab's folder is shared between this (login) host and the nodes, as on every cluster: a job's spec, its status
and the agent's transcript are files under `.arl/engine/` and `.arl/logs/`. The job runs `python -m
arl.engines.slurm_job SPEC` (the runner), which adds the GPUs the scheduler gave the job to the `docker run` line,
runs it, and on the job's end (its own, `scancel`, a time limit, a preemption) stops the container and writes how it
ended. Freezing and thawing go through the job (`srun --jobid=J --overlap docker pause ...`), which needs no admin
rights. Every sbatch/srun/scancel line is printed, like the docker and git ones; read-only queries (squeue) are not."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from arl.config.config import LabConfig
from arl.errors import ArlError
from arl.sandbox.containers import State
from arl.sandbox.docker_run import slug
from arl.util import sh
from arl.util.fsutil import atomic_write

ACTIVE = ("RUNNING", "CONFIGURING", "COMPLETING", "SUSPENDED", "RESIZING", "SIGNALING", "STAGE_OUT")
# Ends that are the scheduler's doing, not the agent's: the slot is relaunched, no crash is counted.
SCHEDULER_ENDS = ("CANCELLED", "TIMEOUT", "PREEMPTED", "NODE_FAIL", "BOOT_FAIL", "DEADLINE", "REQUEUED")
SLACK_MINUTES = 10  # a job's time beyond what is left of the run: teardown and the last verdict fit in it


class Slurm:
    kind = "slurm"

    def __init__(self, cfg: LabConfig) -> None:
        self.cfg = cfg
        self.s = cfg.engine
        self.folder = cfg.state_dir / "engine"

    # -- the job of a container
    def spec_path(self, name: str) -> Path:
        return self.folder / f"{name}.json"

    def status_path(self, name: str) -> Path:
        return self.folder / f"{name}.status.json"

    def job_of(self, name: str) -> str | None:
        try:
            return str(json.loads(self.spec_path(name).read_text())["job"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def job_name(self, run: int, slot: int) -> str:
        return f"arl-{slug(self.cfg.name)}-r{run}-s{slot}"

    def comment(self, name: str) -> str:
        return f"arl:{self.cfg.root}:{name}"

    def resources(self) -> list[str]:
        """The flags every job of the lab gets: partition, account, a GPU share per slot, the user's own."""
        args = [f"--partition={self.s.partition}"] if self.s.partition else []
        args += [f"--account={self.s.account}"] if self.s.account else []
        args += [f"--gres={self.s.gres}"] if self.s.gres else []
        return args + list(self.s.sbatch_args)

    def time_flag(self, time_left: float) -> list[str]:
        """`--time`: `[engine] time_limit`, else what is left of the run (max_hours) and some slack."""
        if self.s.time_limit:
            return [f"--time={self.s.time_limit}"]
        if time_left <= 0:
            return []  # no max_hours: the partition's default
        return [f"--time={int(time_left / 60 + SLACK_MINUTES)}"]

    def start(
        self, cmd: Any, name: str, transcript: Path, env: dict[str, str], slot: int, run: int, time_left: float = 0.0
    ) -> int | None:
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.status_path(name).unlink(missing_ok=True)
        spec: dict[str, Any] = {
            "name": name,
            "root": str(self.cfg.root),
            "argv": list(cmd.formulate())[1:],  # `run ...`: the runtime is [engine] runtime
            "runtime": self.s.runtime,
            "gpu_mode": self.s.gpu_mode,
            "transcript": str(transcript),
            "status": str(self.status_path(name)),
            "secrets": sorted(env),  # names only: the values reach the job in its environment, never a file
        }
        broker = self._broker(slot, name)
        if broker:
            spec["relay" if self.s.broker == "submit-host" else "broker"] = broker
        atomic_write(self.spec_path(name), json.dumps(spec), fsync=False)
        os.chmod(self.spec_path(name), 0o600)
        log = self.cfg.state_dir / "logs" / f"{name}.job.log"
        log.parent.mkdir(mode=0o700, exist_ok=True)  # sbatch's output file: a job whose folder is missing fails
        runner = f"exec {sys.executable} -m arl.engines.slurm_job {self.spec_path(name)}"
        args = [
            "--parsable",
            f"--job-name={self.job_name(run, slot)}",
            f"--comment={self.comment(name)}",
            f"--output={log}",
            "--open-mode=append",
            "--export=ALL",
            "--ntasks=1",
            *self.time_flag(time_left),
            *self.resources(),
            f"--wrap={runner}",
        ]
        sbatch = sh.tool("sbatch")[args]
        _, out, _ = sh.run(sbatch, env=env)  # the credential travels in the job's environment, as the user's own
        job = out.strip().split(";")[0]
        if not job.isdigit():
            raise ArlError(f"sbatch printed no job id: {out.strip()[:200]!r}")
        spec["job"], spec["submitted_at"] = job, time.time()
        atomic_write(self.spec_path(name), json.dumps(spec), fsync=False)
        print(f"slot {slot}: job {job} submitted ({self.job_name(run, slot)})", flush=True)
        return None

    def _broker(self, slot: int, name: str) -> dict[str, Any] | None:
        """The API broker of the slot's job (when the agent has one): its command with the slot's socket, and what
        the run has spent so far (its budget counts from there). With the broker on this host: the job's relay."""
        from arl.broker import process as brokerproc
        from arl.broker import relay
        from arl.runstate import state

        if self.s.broker == "submit-host":
            sock = brokerproc.slot_folder(self.cfg.state_dir, slot) / brokerproc.SOCKET
            spec = relay.relay_spec(self.cfg, slot, sock, name)
            if spec:
                brokerproc.made_way(self.cfg, sock)
            return spec
        try:
            argv = json.loads(brokerproc.job_command_file(self.cfg).read_text())
        except (OSError, ValueError):
            return None
        sock = brokerproc.slot_folder(self.cfg.state_dir, slot) / brokerproc.SOCKET
        brokerproc.made_way(self.cfg, sock)
        spent = repr(float(state.load(self.cfg).get("cost", 0.0)))
        argv += ["--socket", str(sock), "--first-slot", str(slot), "--spent", spent]
        log = self.cfg.state_dir / "logs" / f"broker-slot{slot}.log"
        return {"argv": argv, "socket": str(sock), "log": str(log)}

    # -- what the scheduler and the runner say
    def _squeue(self, job: str) -> tuple[str, str, str] | None:
        """(state, reason, node) of the job; None once the scheduler forgot it. An error of squeue itself (the
        controller unreachable for a moment) is an ArlError: nothing is concluded from it."""
        code, out, err = sh.run(sh.tool("squeue")["-h", "-j", job, "-t", "all", "-o", "%T|%r|%N"], ok=None, quiet=True)
        if code != 0:
            if "Invalid job id" in err:
                return None
            raise ArlError(f"squeue failed: {err.strip()[-200:]}")
        line = out.strip().splitlines()[0] if out.strip() else ""
        if not line:
            return None
        state, reason, node = (line.split("|") + ["", ""])[:3]
        return state, reason, node

    def _status(self, name: str) -> dict[str, Any]:
        try:
            got = json.loads(self.status_path(name).read_text())
            return got if isinstance(got, dict) else {}
        except (OSError, ValueError):
            return {}

    def state(self, name: str) -> State:
        job = self.job_of(name) if name else None
        if job is None:
            return State(exists=False)
        status = self._status(name)
        try:
            q = self._squeue(job)
        except ArlError as e:  # no word from the controller: as the runner last said, still alive
            return State(exists=True, status="created", id=job, error=str(e))
        if q is not None and q[0] == "PENDING":
            return State(exists=True, status="queued", id=job, reason=q[1] if q[1] not in ("", "None") else "submitted")
        if q is not None and q[0] in ACTIVE and status.get("state") != "exited":
            if status.get("state") == "running":
                frozen = (self.folder / f"{name}.frozen").exists()
                return State(exists=True, status="paused" if frozen else "running", id=job)
            return State(exists=True, status="created", id=job)
        ended = q[0] if q is not None else ""
        by = ended if ended in SCHEDULER_ENDS else f"SIG{status['signal']}" if status.get("signal") else ""
        return State(
            exists=True,
            status="exited",
            id=job,
            exit_code=status.get("exit_code"),
            oom_killed=bool(status.get("oom")),
            error=status.get("error")
            or ("" if status else f"job {job} ended ({ended or 'gone'}) before its container"),
            ended_by=f"{by} (job {job})" if by else "",
        )

    def describe(self, name: str) -> str:
        job = self.job_of(name)
        if job is None:
            return ""
        try:
            q = self._squeue(job)
        except ArlError:
            q = None
        if q is None:
            return f"job {job} (ended)"
        where = f" on {q[2]}" if q[2] and q[0] != "PENDING" else ""
        return f"job {job}{where} ({q[0].lower()}{', ' + q[1] if q[0] == 'PENDING' else ''})"

    # -- acting on a container through its job
    def _in_job(self, name: str, *args: str, quiet: bool = False) -> int:
        job = self.job_of(name)
        if job is None:
            return 1
        step = sh.tool("srun")[[f"--jobid={job}", "--overlap", "--ntasks=1", "--quiet", *self._step_flags(), *args]]
        code, _, _ = sh.run(step, ok=None, quiet=quiet, timeout=120)
        return code

    def _step_flags(self) -> list[str]:
        """A step beside the agent's: no GPU, CPU or memory of its own (the job's are the agent's)."""
        return ["--gres=none", "--mem=0"] if self.s.gres else ["--mem=0"]

    def freeze(self, name: str) -> bool:
        if self.state(name).status != "running":
            return False
        if self._in_job(name, self.s.runtime, "pause", name) != 0:
            return False
        atomic_write(self.folder / f"{name}.frozen", "", fsync=False)
        return True

    def thaw(self, name: str) -> None:
        self._in_job(name, self.s.runtime, "unpause", name)
        (self.folder / f"{name}.frozen").unlink(missing_ok=True)

    def remove(self, name: str, grace: float = 5.0, remove: bool = True) -> None:
        """`scancel`: the runner in the job stops its container (SIGINT, then harder: as on this machine) and writes
        how it ended; wait until the job has left the queue."""
        job = self.job_of(name)
        if job is None:
            return
        try:
            q = self._squeue(job)
        except ArlError:
            q = ("RUNNING", "", "")
        if q is not None and (q[0] in ACTIVE or q[0] == "PENDING"):
            sh.run(sh.tool("scancel")[job], ok=None)
            self.wait_gone(job, grace + 60)
        (self.folder / f"{name}.frozen").unlink(missing_ok=True)

    def wait_gone(self, job: str, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        delay = 0.05
        while time.monotonic() < deadline:
            try:
                q = self._squeue(job)
            except ArlError:
                q = ("RUNNING", "", "")
            if q is None or q[0] not in ACTIVE and q[0] != "PENDING":
                return True
            time.sleep(delay)
            delay = min(delay * 2, 1.0)
        return False

    def stderr_tail(self, name: str, lines: int = 5) -> str:
        return "\n".join(str(self._status(name).get("stderr_tail", "")).splitlines()[-lines:])

    def gpus(self, slot: int) -> str:
        return ""  # the runner adds the GPUs the scheduler gave the job

    def verification(self, name: str, argv: list[str]) -> list[str]:
        """A step of the slot's own job, with its resources (its agent is frozen meanwhile); a job of its own when
        the slot's has ended."""
        job = self.job_of(name) if name else None
        if job is not None and self.state(name).status in ("running", "paused", "created"):
            return ["srun", f"--jobid={job}", "--overlap", "--ntasks=1", "--quiet", "--mem=0", *argv]
        return [
            "srun",
            "--ntasks=1",
            "--quiet",
            f"--job-name=arl-{slug(self.cfg.name)}-verify",
            *self.resources(),
            *argv,
        ]

    def leftovers(self) -> list[str]:
        """The lab's jobs the scheduler still has, found by their comment (a run killed before its teardown)."""
        code, out, err = sh.run(sh.tool("squeue")["-h", "-o", "%i|%k"], ok=None, quiet=True)
        if code != 0:
            raise ArlError(f"cannot list SLURM jobs: {err.strip()[-200:]}")
        prefix = f"arl:{self.cfg.root}:"
        names = []
        for line in out.splitlines():
            job, _, comment = line.partition("|")
            if comment.startswith(prefix):
                name = comment[len(prefix) :]
                if self.job_of(name) != job.strip():  # the spec lost or stale: it names this job from now on
                    self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
                    atomic_write(self.spec_path(name), json.dumps({"name": name, "job": job.strip()}), fsync=False)
                names.append(name)
        return names
