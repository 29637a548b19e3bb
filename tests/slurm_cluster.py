"""A private single-node SLURM cluster for the tests: its own munged, slurmctld and slurmd on this host.

Everything lives in one temporary folder (config, key, sockets, spool, state, logs) with free ports and a unique
cluster name, so tests neither need nor disturb a system munged or SLURM, and two clusters can run side by side.
GPUs are generic resources backed by placeholder device files: `srun --gres=gpu:1` sets CUDA_VISIBLE_DEVICES
exactly as on a real GPU node. Clients reach the cluster through SLURM_CONF alone (`Cluster.env`).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")
DAEMONS = ("munged", "slurmctld", "slurmd")
_SEP = "\x1f"  # squeue's field separator: a job's comment may hold any printable character
_FIELDS = ("id", "name", "comment", "state", "reason", "node")


class SlurmClusterError(RuntimeError):
    """The test cluster did not start or stop; the message carries the daemons' log tails."""


def missing_daemons() -> list[str]:
    return [d for d in DAEMONS if _which(d) is None]


def _which(name: str) -> str | None:
    # the daemons live in /usr/sbin, which a non-root PATH usually lacks
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("", 0))
        return s.getsockname()[1]


def _memory_mb() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20


def _gres_files(gpus: int) -> str:
    # /dev/ttyN exist on every Linux host; slurm only needs a device file per GPU to number them
    return "/dev/tty0" if gpus == 1 else f"/dev/tty[0-{gpus - 1}]"


def reap_stale_clusters() -> None:
    """Stop what a test run that was killed (kill -9, a crash) left of its clusters: their owner pid is gone."""
    for root in Path(tempfile.gettempdir()).glob("arl-slurm-*"):
        try:
            owner = int((root / "owner").read_text())
        except (OSError, ValueError):
            continue  # being created right now, or not one of ours
        if not Path(f"/proc/{owner}").exists():
            for pid in processes_using(root):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            shutil.rmtree(root, ignore_errors=True)


@dataclass(frozen=True)
class Job:
    id: str
    name: str
    comment: str
    state: str
    reason: str
    node: str


@dataclass
class Cluster:
    conf: Path
    env: dict[str, str]
    gpus: int
    partition: str
    root: Path
    node: str
    cpus: int
    _procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def run(self, *args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """A SLURM client command (sbatch, srun, squeue...) against this cluster."""
        # a test suite itself running inside a SLURM job must not hand its own job to these commands
        base = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "SBATCH_", "SRUN_", "SALLOC_"))}
        proc = subprocess.run(args, capture_output=True, text=True, env={**base, **self.env}, timeout=timeout)
        if check and proc.returncode != 0:
            raise SlurmClusterError(f"{list(args)} exited {proc.returncode}\n{proc.stdout}{proc.stderr}")
        return proc

    def jobs(self) -> list[Job]:
        """Every job squeue knows (pending, running, completing), in id order."""
        fmt = _SEP.join(("%i", "%j", "%k", "%T", "%r", "%N"))
        out = self.run("squeue", "-h", "-a", "-o", fmt).stdout
        # squeue prints an unset comment as "(null)"
        rows = [
            Job(**{k: "" if v == "(null)" else v for k, v in zip(_FIELDS, line.split(_SEP), strict=True)})
            for line in out.splitlines()
            if line
        ]
        return sorted(rows, key=lambda j: int(j.id.split("_")[0]))

    def job(self, job_id: str) -> Job | None:
        return next((j for j in self.jobs() if j.id == job_id), None)

    def wait_for(self, predicate: Callable[[], T], timeout: float = 30, what: str = "condition") -> T:
        """Poll predicate until it returns something truthy; on timeout raise with the daemons' log tails."""
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() > deadline:
                raise SlurmClusterError(f"timed out after {timeout}s waiting for {what}\n{self.log_tails()}")
            time.sleep(0.1)

    def log_tails(self, lines: int = 15) -> str:
        parts: list[str] = []
        logs = sorted((self.root / "log").glob("*.log"))
        # a daemon's stdout/stderr only when it died before opening its log (the rest repeats the log)
        logs += [out for out in sorted((self.root / "log").glob("*.out")) if not out.with_suffix(".log").exists()]
        for log in logs:
            tail = log.read_text(errors="replace").splitlines()[-lines:]
            parts.append(f"--- {log.name}\n" + "\n".join(tail))
        return "\n".join(parts)

    def start(self, timeout: float = 60) -> None:
        m, sock = self.root / "munge", self.root / "sock" / "munge.sock"
        files = {"socket": sock, "key-file": m / "munge.key", "seed-file": m / "seed", "pid-file": m / "munged.pid"}
        self._spawn("munged", "-F", *(f"--{k}={v}" for k, v in files.items()))  # none of the system's munged files
        self.wait_for(lambda: self._check_alive() or sock.exists(), timeout, "munged's socket")
        self._spawn("slurmctld", "-D", "-f", str(self.conf))
        self._spawn("slurmd", "-D", "-f", str(self.conf), "-N", self.node)

        def node_idle() -> bool:
            self._check_alive()
            states = self.run("sinfo", "-h", "-N", "-o", "%T", check=False).stdout.split()
            return states == ["idle"]

        self.wait_for(node_idle, timeout, f"node {self.node} idle in sinfo")
        self.run("srun", "-N1", "true", timeout=timeout)

    def stop(self, timeout: float = 30) -> None:
        """Cancel every job, wait for their steps to end, stop the daemons; nothing of the cluster survives."""
        try:
            if self._procs.get("slurmctld") and self._procs["slurmctld"].poll() is None:
                ids = [j.id for j in self.jobs()]
                if ids:
                    self.run("scancel", *ids, check=False)
                self.wait_for(lambda: not self.jobs(), timeout, "every job to end")
                # a job's slurmstepd outlives slurmd: wait until the last one has removed its socket
                spool = self.root / "spool"
                self.wait_for(lambda: not any(spool.glob(f"{self.node}_*")), timeout, "job steps to exit")
        finally:
            for name in reversed(list(self._procs)):
                self._terminate(name, timeout)
            self._procs.clear()
            leftovers = processes_using(self.root)
            for pid in leftovers:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        if leftovers:
            raise SlurmClusterError(f"processes of the cluster survived its stop (killed): {leftovers}")
        shutil.rmtree(self.root, ignore_errors=True)

    def _spawn(self, name: str, *args: str) -> None:
        exe = _which(name)
        assert exe is not None, name
        out = open(self.root / "log" / f"{name}.out", "wb")  # noqa: SIM115 - the daemon owns it from here
        self._procs[name] = subprocess.Popen(
            [exe, *args], stdout=out, stderr=subprocess.STDOUT, cwd=self.root, start_new_session=True
        )
        out.close()

    def _check_alive(self) -> None:
        for name, proc in self._procs.items():
            if proc.poll() is not None:
                raise SlurmClusterError(f"{name} exited {proc.returncode} at start\n{self.log_tails()}")

    def _terminate(self, name: str, timeout: float) -> None:
        proc = self._procs[name]
        proc.terminate()  # nothing when it has already exited
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)


def processes_using(root: Path) -> list[int]:
    """Pids whose command line, environment (a job's SLURM_CONF), working folder or open files name root: the
    daemons, slurmstepd, job scripts and what they started."""
    prefix = str(root)
    found: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            text = b" ".join((entry / f).read_bytes() for f in ("cmdline", "environ")).decode(errors="replace")
            paths = [os.readlink(entry / "cwd")] + [os.readlink(fd) for fd in (entry / "fd").iterdir()]
        except OSError:  # the process ended while we looked, or is not ours to read
            continue
        if prefix in text or any(p == prefix or p.startswith(prefix + "/") for p in paths):
            found.append(int(entry.name))
    return found


def write_config(root: Path, gpus: int, partition: str = "debug") -> Cluster:
    """The private folder and its slurm.conf/gres.conf; the cluster is not started."""
    node = socket.gethostname().split(".")[0]
    cpus = os.cpu_count() or 1
    for sub in ("munge", "sock", "spool", "state", "log"):
        (root / sub).mkdir(parents=True)
    # munged insists that everyone may traverse to its socket, and that only its owner reads the key
    for path in (root, root / "sock", root / "log"):
        path.chmod(0o755)
    (root / "munge").chmod(0o700)
    key = root / "munge" / "munge.key"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o400)
    (root / "owner").write_text(str(os.getpid()))  # for reap_stale_clusters
    gres = f" Gres=gpu:{gpus}" if gpus else ""
    lines = {
        "ClusterName": f"arltest{uuid.uuid4().hex[:8]}",
        "SlurmctldHost": node,
        "SlurmctldPort": _free_port(),
        "SlurmdPort": _free_port(),
        "SlurmUser": "root",
        "AuthInfo": f"socket={root / 'sock' / 'munge.sock'}",
        "StateSaveLocation": root / "state",
        "SlurmdSpoolDir": root / "spool",
        "SlurmctldPidFile": root / "slurmctld.pid",
        "SlurmdPidFile": root / "slurmd.pid",
        "SlurmctldLogFile": root / "log" / "slurmctld.log",
        "SlurmdLogFile": root / "log" / "slurmd.log",
        "PlugStackConfig": root / "plugstack.conf",  # not the system's SPANK plugins
        "MailProg": "/bin/true",
        # no cgroup v2 delegation needed: track job processes through /proc, bind nothing
        "ProctrackType": "proctrack/linuxproc",
        "TaskPlugin": "task/none",
        "JobAcctGatherType": "jobacct_gather/none",
        "AccountingStorageType": "accounting_storage/none",
        # one CPU per job is one slot: as many concurrent 1-CPU jobs as the machine has CPUs
        "SelectType": "select/cons_tres",
        "SelectTypeParameters": "CR_CPU",
        "SchedulerType": "sched/backfill",
        "SchedulerParameters": "bf_interval=1,default_queue_depth=100",
        "GresTypes": "gpu",
        "ReturnToService": 2,
        "KillWait": 3,
    }
    conf_text = "".join(f"{k}={v}\n" for k, v in lines.items())
    memory = max(256, min(2048, _memory_mb() // 2))
    conf_text += f"NodeName={node} CPUs={cpus} RealMemory={memory}{gres} State=UNKNOWN\n"
    conf_text += f"PartitionName={partition} Nodes={node} Default=YES MaxTime=INFINITE State=UP\n"
    conf = root / "slurm.conf"
    conf.write_text(conf_text)
    (root / "gres.conf").write_text(f"Name=gpu File={_gres_files(gpus)}\n" if gpus else "")
    (root / "plugstack.conf").write_text("")
    env = {"SLURM_CONF": str(conf)}
    return Cluster(conf=conf, env=env, gpus=gpus, partition=partition, root=root, node=node, cpus=cpus)


def start_cluster(gpus: int = 4, partition: str = "debug") -> Cluster:
    reap_stale_clusters()
    # not pytest's tmp_path: its 0700 parents would make munged refuse the socket
    root = Path(tempfile.mkdtemp(prefix="arl-slurm-"))
    cluster = write_config(root, gpus, partition)
    try:
        cluster.start()
    except BaseException:
        with contextlib.suppress(SlurmClusterError):  # the start's own error says more
            cluster.stop()
        raise
    return cluster


ClusterFactory = Callable[..., Cluster]


def cluster_factory() -> Iterator[ClusterFactory]:
    """Body of the `slurm_cluster` fixture: `slurm_cluster(gpus=1)` starts a cluster, teardown stops them all
    (each one even when another's stop fails)."""
    with contextlib.ExitStack() as stops:

        def factory(gpus: int = 4, partition: str = "debug") -> Cluster:
            cluster = start_cluster(gpus, partition)
            stops.callback(cluster.stop)
            return cluster

        yield factory
