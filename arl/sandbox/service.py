"""The lab's optional host service: a program the host runs for the whole run (or one evaluation)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from arl.config.config import LabConfig
from arl.errors import ArlError
from arl.util import sh
from arl.util.fsutil import atomic_write


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.2)
        return s.connect_ex((host, port)) == 0


def pid_file(cfg: LabConfig) -> Path:
    return cfg.state_dir / "service.pid"


def socket_dir(cfg: LabConfig, slot: int | None = None) -> Path:
    """The folder of the unix socket forwarded to the service for the slot's agent (None: for the host's
    verification containers). A container mounts its own folder only: a slot that floods its socket, up to that
    socket's cap of connections, leaves the other slots' sockets working."""
    return cfg.state_dir / "svc" / ("verify" if slot is None else f"slot-{slot}")


def sockets(cfg: LabConfig) -> list[Path]:
    """Every socket the forwarder listens on: the verifications' and one per slot of the run."""
    from arl.runstate import slots, state

    try:
        count = slots.count(state.load(cfg))
    except ArlError:
        count = 1  # an unreadable state: the run that reads it stops with the reason
    return [socket_dir(cfg, k) / "service.sock" for k in (None, *range(count))]


def url(cfg: LabConfig) -> str:
    assert cfg.host_service is not None
    return f"http://127.0.0.1:{cfg.host_service.port}"


def start_forwarder(cfg: LabConfig) -> int:
    """unix:.arl/svc/<slot-K|verify>/service.sock -> 127.0.0.1:PORT, one process with a socket per slot, in its own
    process group (stopped with the service)."""
    assert cfg.host_service is not None
    socks = sockets(cfg)
    ready = cfg.state_dir / "svc" / "ready"
    for sock in socks:
        # The folders stay (a running container's mount is the folder): only the socket in it is made anew.
        sock.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        sock.unlink(missing_ok=True)
    ready.unlink(missing_ok=True)
    listen = [f"unix:{sock}" for sock in socks]
    argv = [sys.executable, "-m", "arl.broker.forward", *listen, "--to", f"tcp:127.0.0.1:{cfg.host_service.port}"]
    argv += ["--ready", str(ready)]
    proc = sh.spawn(argv, cfg.state_dir / "logs" / "forward.log")
    atomic_write(cfg.state_dir / "forward.pid", f"{proc.pid}\n")
    sh.wait_ready(proc, ready.exists, 10)
    return proc.pid


def forwarder_alive(cfg: LabConfig) -> bool:
    """The forwarder's process runs and every socket of it is in place: each slot can reach the service."""
    from arl.runstate.state import pid_alive

    try:
        pid = int((cfg.state_dir / "forward.pid").read_text().strip())
    except (OSError, ValueError):
        return False
    _reap(pid)  # ours when this process started it: a dead one is a zombie until reaped
    return pid_alive(pid) and all(sock.exists() for sock in sockets(cfg))


def restart_forwarder(cfg: LabConfig) -> int:
    stop_group(cfg.state_dir / "forward.pid")
    return start_forwarder(cfg)


def argv(cfg: LabConfig) -> list[str]:
    """`[backend.host_service] command` as the process to start: a string through `sh -c` (so pipes, `&&` and
    `$ARL_DATA_DIR` work, as in autoresearch-lab), a list as argv."""
    assert cfg.host_service is not None
    command: str | list[str] = cfg.host_service.command
    if not isinstance(command, str):
        written = _written_command(cfg)  # the config may have split a string already: what did the user write?
        command = written if isinstance(written, str) else command
    return ["sh", "-c", command] if isinstance(command, str) else list(command)


def _written_command(cfg: LabConfig) -> object:
    from arl.config import config

    try:
        raw = config.tomllib.loads(cfg.path.read_text(encoding="utf-8"))
        return raw["backend"]["host_service"]["command"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def run_data(cfg: LabConfig) -> Path | None:
    """The data folder of the lab's run (its state says), when `up` is not told."""
    from arl.runstate import state

    try:
        given = state.load(cfg).get("settings", {}).get("data")
    except (ArlError, AttributeError):
        given = None
    return Path(given) if isinstance(given, str) and given else None


def start(cfg: LabConfig, ready_timeout: float = 30.0, data: Path | None = None) -> int:
    svc = cfg.host_service
    assert svc is not None
    env = {**os.environ, "ARL_PIPELINE_DIR": str(cfg.pipeline_dir)}
    if data is not None:
        env["ARL_DATA_DIR"] = str(data.resolve())
    command = argv(cfg)
    if port_open(svc.port):
        raise ArlError(
            f"port {svc.port} is already in use before the host service started "
            f"([backend.host_service] port in {cfg.path})"
        )
    log_dir = cfg.state_dir / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    try:
        proc = sh.spawn(list(command), log_dir / "service.log", env=env, cwd=cfg.root)
    except OSError as e:
        raise ArlError(f"cannot start the host service {command[0]!r}: {e.strerror}")
    atomic_write(pid_file(cfg), f"{proc.pid}\n")
    deadline = time.monotonic() + ready_timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pid_file(cfg).unlink(missing_ok=True)
            raise ArlError(
                f"the host service exited with code {proc.returncode} before answering on port "
                f"{svc.port}; see {log_dir / 'service.log'}"
            )
        if port_open(svc.port):
            return proc.pid
        time.sleep(0.05)
    stop(cfg)
    raise ArlError(f"the host service did not answer on port {svc.port} within {ready_timeout:g} s")


def up(cfg: LabConfig, data: Path | None = None) -> int:
    """For a run: the service, and the forwarder that lets the sandbox reach it."""
    pid = start(cfg, data=data or run_data(cfg))
    start_forwarder(cfg)
    return pid


def running_pid(cfg: LabConfig) -> int | None:
    from arl.runstate.state import pid_alive

    try:
        pid = int(pid_file(cfg).read_text().strip())
    except (OSError, ValueError):
        return None
    _reap(pid)  # when this process started it, a dead service is our zombie until reaped
    return pid if pid_alive(pid) else None


def stop(cfg: LabConfig) -> None:
    """Stop the forwarder and the service, each with its whole process group: SIGTERM, then SIGKILL."""
    stop_group(cfg.state_dir / "forward.pid")
    stop_group(pid_file(cfg))


def stop_group(path: Path) -> None:
    try:
        pid = int(path.read_text().strip())
    except (OSError, ValueError):
        return
    for sig, grace in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 2.0)):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and _group_alive(pid):
            _reap(pid)
            time.sleep(0.05)
        if not _group_alive(pid):
            break
    path.unlink(missing_ok=True)


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


@contextlib.contextmanager
def host_service(cfg: LabConfig, data: Path | None = None) -> Iterator[None]:
    """For a host-side evaluation of `data`: the service runs around it, unless a run already started it."""
    if cfg.host_service is None or os.environ.get("ARL_SANDBOX"):  # in the sandbox, the host runs it
        yield
        return
    os.environ.setdefault("ARL_HOST_SERVICE_URL", url(cfg))
    if running_pid(cfg):
        yield
        return
    start(cfg, data=data or (Path(os.environ["ARL_DATA"]) if os.environ.get("ARL_DATA") else None))
    try:
        yield
    finally:
        stop(cfg)
