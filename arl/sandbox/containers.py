"""Our containers: their state, output, freezing and removal.

The docker CLI does all of it: one way to do each thing, each line printable (a wait with a deadline is `docker
wait`, cut off at it)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from arl.errors import ArlError
from arl.util import sh


@dataclass
class State:
    exists: bool
    status: str = "missing"  # queued | created | running | paused | exited | dead | missing
    exit_code: int | None = None
    oom_killed: bool = False
    error: str = ""
    id: str = ""
    reason: str = ""  # why a job is queued (the scheduler's word)
    ended_by: str = ""  # the scheduler ended it (time limit, preemption, node failure, scancel): not the agent's doing

    @property
    def alive(self) -> bool:
        return self.status in ("queued", "created", "running", "paused", "restarting")


def state(name: str) -> State:
    if not name:
        return State(exists=False)
    code, out, _ = sh.run(
        sh.docker()["inspect", "--type", "container", "--format", "{{.Id}} {{json .State}}", name], ok=None, quiet=True
    )
    if code != 0:
        return State(exists=False)
    cid, _, raw = out.partition(" ")
    s = json.loads(raw)
    return State(
        id=cid,
        exists=True,
        status=s.get("Status", "unknown"),
        exit_code=s.get("ExitCode"),
        oom_killed=bool(s.get("OOMKilled")),
        error=s.get("Error", ""),
    )


def run_attached(cmd: Any, name: str, dest: Path, env: dict[str, str] | None = None, timeout: float = 120) -> int:
    """Start `docker run` (not detached) in its own session with the container's stdout appended to DEST: the
    stream lands in a host file as it is written, from its first byte, and the engine's log rotation (a daemon
    with max-size) can never lose or misalign a line of it. Returns once the container exists; the docker client
    (its pid is returned) ends with the container. A `docker run` that fails is an ArlError with its message."""
    sh.echo(f"{sh.env_line(env, cmd)} >> {dest} &")  # the secrets it is given named, never shown
    dest.parent.mkdir(parents=True, exist_ok=True)
    err_path = dest.with_suffix(".docker-run.err")
    with open(dest, "ab") as out, open(err_path, "wb") as err:
        # subprocess, not plumbum's popen: that object's finaliser waits on the process and swallows a Ctrl-C
        proc = subprocess.Popen(
            list(cmd.formulate()),
            stdout=out,
            stderr=err,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env={**os.environ, **(env or {})},
        )
    deadline = time.monotonic() + timeout
    interrupted = False
    # A Ctrl-C meanwhile waits for the container to exist: one created after teardown looked would escape it.
    while True:
        try:
            if state(name).exists:
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                detail = err_path.read_text(errors="replace").strip().splitlines()
                raise ArlError(f"`{sh.line(cmd)}` failed: {detail[-1] if detail else 'no container was created'}")
            time.sleep(0.02)
        except KeyboardInterrupt:
            interrupted = True
    if interrupted:
        raise KeyboardInterrupt
    return int(proc.pid)


def follower_done(pid: int | None, timeout: float) -> bool:
    """Wait for a follower to end (its container has stopped): True when it has written everything."""
    from arl.runstate.state import pid_alive

    deadline = time.monotonic() + timeout
    while pid and time.monotonic() < deadline:
        try:
            os.waitpid(pid, os.WNOHANG)  # ours (in `arl run`): reap it, or it stays a zombie
        except ChildProcessError:
            pass
        if not pid_alive(pid):
            return True
        time.sleep(0.02)
    return not pid or not pid_alive(pid)


def stderr_tail(name: str, lines: int = 5) -> str:
    code, _, err = sh.run(sh.docker()["logs", "--tail", str(lines), name], ok=None, quiet=True)
    return err.strip() if code == 0 else ""


# How long a freeze or thaw may take. Both are a few tens of ms; an engine that has not answered by then is stuck on
# the container (a `docker exec` into a frozen container blocks, and holds the container's lock with it).
FREEZE_DEADLINE = 30.0


def pause(name: str) -> bool:
    """Freeze the container; False when it is not running (gone, exited, already paused). When the engine does not
    answer in time, True: the engine still carries the pause out once it can (it cannot be called back), so the
    caller must thaw it as if frozen; meanwhile the verdict's tree check catches any late edit."""
    try:
        code, _, _ = sh.run(sh.docker()["pause", name], ok=None, timeout=FREEZE_DEADLINE)
    except ArlError:
        sh.say(f"arl: warning: docker pause {name} did not return in {FREEZE_DEADLINE:g} s; thawed after the decision")
        return True
    return code == 0


def unpause(name: str, deadline: float = FREEZE_DEADLINE) -> None:
    """Thaw the container. When the engine does not answer in time, the kernel's freezer is thawed directly, which
    also lets the blocked `docker exec` (and with it the engine's lock on the container) go."""
    try:
        sh.run(sh.docker()["unpause", name], ok=None, timeout=deadline)
    except ArlError:
        sh.say(f"arl: warning: docker unpause {name} did not return in {deadline:g} s: {_thaw_cgroup(name)}")


def _thaw_cgroup(name: str) -> str:
    """Write "thawed" into the container's freezer (cgroup v1 or v2, any cgroup driver or parent); what was done,
    or the command a person with the rights can run. `docker ps` reads the engine's in-memory view, without the
    container's lock, so it answers while `docker unpause` does not."""
    try:
        _, out, _ = sh.run(
            sh.docker()["ps", "--all", "--no-trunc", "--filter", f"name=^/{name}$", "--format", "{{.ID}}"],
            ok=None,
            quiet=True,
            timeout=FREEZE_DEADLINE,
        )
    except ArlError:
        return "the engine does not answer `docker ps` either"
    cid = out.strip()
    if not cid or "\n" in cid:
        return "its id could not be read"
    found = _freezer(cid)
    if found is None:
        return f"no freezer cgroup of container {cid[:12]} was found"
    path, value = found
    try:
        path.write_text(value)
    except OSError as e:
        return f"its cgroup could not be thawed ({e.strerror}); as root: echo {value} > {path}"
    return f"thawed through {path}"


def _freezer(cid: str) -> tuple[Path, str] | None:
    """The file that freezes the container's cgroup, and the value that thaws it: looked up where the engines put
    it (cgroupfs or systemd driver, v1 or v2), then anywhere under /sys/fs/cgroup (rootless, a --cgroup-parent)."""
    root = Path("/sys/fs/cgroup")
    for folder in (root / "freezer" / "docker" / cid, root / "freezer" / "system.slice" / f"docker-{cid}.scope"):
        if (folder / "freezer.state").is_file():
            return folder / "freezer.state", "THAWED"
    for folder in (root / "system.slice" / f"docker-{cid}.scope", root / "docker" / cid):
        if (folder / "cgroup.freeze").is_file():
            return folder / "cgroup.freeze", "0"
    for top, dirs, files in os.walk(root):
        if cid in os.path.basename(top):
            for file, value in (("cgroup.freeze", "0"), ("freezer.state", "THAWED")):
                if file in files:
                    return Path(top) / file, value
            dirs.clear()
    return None


def _wait_exit(name: str, grace: float) -> bool:
    """Until the container has exited, or `grace` seconds: `docker wait`, cut off at the deadline."""
    try:
        code, _, _ = sh.run(sh.docker()["wait", name], ok=None, timeout=max(grace, 0.1))
        return code == 0
    except ArlError:  # timed out: the caller escalates
        return False


def stop(name: str, grace: float = 5.0, remove: bool = True) -> None:
    """SIGINT (agents save and exit), then docker stop (SIGTERM, SIGKILL), then remove. --init forwards them."""
    st = state(name)
    if not st.exists:
        return
    # A frozen agent stays frozen: thawing it to say goodbye would let it start one more edit.
    if st.status == "running":
        sh.run(sh.docker()["kill", "--signal", "INT", name], ok=None)
        if not _wait_exit(name, grace):
            sh.run(sh.docker()["stop", "--time", str(int(grace)), name], ok=None)
    elif st.status == "paused":
        _kill_frozen(name, st.id)
        remove = True  # it cannot say goodbye (or print) while frozen: removed, its client ends and the log is whole
    if remove:
        sh.run(sh.docker()["rm", "--force", name], ok=None)


def _kill_frozen(name: str, cid: str) -> None:
    """SIGKILL to every process of a frozen container, from the host, before anything thaws it: each then dies as
    it thaws, without running one more instruction of its own. `docker rm --force` alone kills the container's
    first process and thaws the rest, which may act for a few milliseconds before the kernel reaps them: time
    enough for an agent to read the ack it was frozen waiting for and write the next edit. Only processes that
    are this container's (by their cgroup) and ours to signal; the rest is left to `docker rm --force`."""
    if not cid:
        return
    _, out, _ = sh.run(sh.docker()["top", name, "-o", "pid"], ok=None, quiet=True)
    for word in out.split()[1:]:
        try:
            pid = int(word)
            with open(f"/proc/{pid}/cgroup") as f:
                if cid not in f.read():  # an engine in another pid namespace: its pids are not ours
                    continue
            os.kill(pid, signal.SIGKILL)
        except (ValueError, OSError):
            continue


def ours(lab_root: str) -> list[str]:
    """Names of the containers of this lab (by label), running or not."""
    code, out, err = sh.run(
        sh.docker()["ps", "--all", "--filter", f"label=arl.root={lab_root}", "--format", "{{.Names}}"],
        ok=None,
        quiet=True,
    )
    if code != 0:
        raise ArlError(f"cannot list containers: {err.strip() or out.strip()}")
    return [n for n in out.split() if n]
