"""The evaluation process: a fork of this process by default (no second interpreter start-up, no re-import of arl),
or a fresh interpreter with `[backend] isolation = "spawn"`. Either way it runs in its own session, so on timeout its
whole process group goes: SIGTERM first (the backend's teardown runs), then SIGKILL."""

from __future__ import annotations

import json
import math
import os
import select
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from arl.errors import ArlError

if TYPE_CHECKING:
    import subprocess

    from arl.evaluation.child import Request, Response


class EvalFailed(ArlError):
    """The backend raised, returned garbage, or ran past eval_timeout."""


# The spawned evaluation process runs in the pipeline folder, but that folder must not shadow modules (a pipeline
# with its own csv.py or json.py): `-c` puts the current folder first on sys.path, so it is dropped first.
_CHILD = (
    "import sys; sys.path[:1] = [] if sys.path[:1] == [''] else sys.path[:1]; "
    "from arl.evaluation.child import main; sys.exit(main())"
)


def run_child(request: Request, cwd: Path, limit: float, spawn: bool) -> Response:
    """The child's answer to `request`, run in `cwd` under `limit` seconds."""
    return _run_child(request, cwd, limit, fork=not spawn and _fork_safe())


def _fork_safe() -> bool:
    """fork() copies only the calling thread: with other threads running, a lock one of them held stays held."""
    threading = sys.modules.get("threading")
    return hasattr(os, "fork") and (threading is None or threading.active_count() == 1)


def _unnamed_file() -> int:
    """A file with no name, readable and writable, gone when its last descriptor closes."""
    try:
        return os.memfd_create("arl-eval")  # no temporary folder, and no `tempfile` to import
    except (AttributeError, OSError):  # not Linux
        import tempfile

        with tempfile.TemporaryFile() as f:
            return os.dup(f.fileno())


def _run_child(request: Request, cwd: Path, limit: float, fork: bool) -> Response:
    # The answer goes to an unnamed file, not a pipe: a large answer never blocks the child while we wait on it.
    with open(_unnamed_file(), "rb") as resp:
        reap: Callable[[], int]
        if fork:
            pid = _fork(request, cwd, resp.fileno())
            reap = lambda: os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])  # noqa: E731
        else:
            proc = _spawn(request, cwd, resp.fileno())
            pid, reap = proc.pid, proc.wait
        try:
            finished = _wait_unreaped(pid, limit)
        except BaseException:
            _kill_group(pid, reap)
            raise
        if not finished:
            _kill_group(pid, reap)
            raise EvalFailed(f"evaluation failed: ran past eval_timeout ({limit:g} s) and was killed")
        # Whatever the backend started and left running dies with the evaluation. The leader is not reaped
        # yet, so its process group id cannot have been reused by an unrelated process.
        _signal_group(pid, signal.SIGKILL)
        code = reap()
        resp.seek(0)
        raw = resp.read()
    try:
        out = json.loads(raw)
    except ValueError:
        out = None
    if not isinstance(out, dict) or out.get("ok") not in (True, False):
        raise EvalFailed(f"evaluation failed: the evaluation process died (exit code {code}) without a result")
    return out  # type: ignore[return-value]  # as the child wrote it (arl.evaluation.child.answer)


def _fork(request: Request, cwd: Path, out_fd: int) -> int:
    """Fork the evaluation process; in the child, run the backend and leave with os._exit, never returning."""
    to_stderr = _has_fileno(sys.stderr)
    for stream in (sys.stdout, sys.stderr):  # or the child would print what this process had buffered, again
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    # imported here, not in the child: a split backend's evaluation forks three times (prepare, run, score), and
    # each child would import it (and the backend API) again
    from arl.evaluation.child import run_forked

    pid = os.fork()
    if pid:
        return pid
    code = 70
    try:
        code = run_forked(request, cwd, out_fd, to_stderr)
    finally:
        os._exit(code)


def _spawn(request: Request, cwd: Path, resp: int) -> subprocess.Popen[bytes]:
    import subprocess

    with open(_unnamed_file(), "r+b") as req:
        req.write(json.dumps(request).encode())
        req.flush()
        req.seek(0)
        fds = (req.fileno(), resp)
        # Own session: on timeout the whole group goes, including anything the backend spawned.
        # The backend's prints go to stderr so that `arl eval --json` keeps stdout clean.
        return subprocess.Popen(
            [sys.executable, "-c", _CHILD, *map(str, fds)],
            stdout=sys.stderr.fileno() if _has_fileno(sys.stderr) else subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            pass_fds=fds,
            cwd=str(cwd),
            env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
        )


def _has_fileno(stream: Any) -> bool:
    try:
        stream.fileno()
        return True
    except Exception:
        return False


def _wait_unreaped(pid: int, timeout: float) -> bool:
    """Wait for the process to exit, leaving it a zombie (so its pid and group id stay reserved). A pidfd becomes
    readable when its process exits: one blocking poll, no sleeping loop."""
    try:
        pidfd = os.pidfd_open(pid)
    except (AttributeError, OSError):  # not Linux >= 5.3, or a seccomp profile that forbids it
        return _poll_unreaped(pid, timeout)
    try:
        poller = select.poll()
        poller.register(pidfd)
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return bool(poller.poll(0))
            # poll takes a C int of milliseconds: a day at most per call; rounded up, so it never spins
            if poller.poll(math.ceil(min(left, 86400.0) * 1000)):
                return True
    finally:
        os.close(pidfd)


def _poll_unreaped(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    delay = 0.001
    while True:
        if os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
            return True
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        time.sleep(min(delay, left))
        delay = min(delay * 2, 0.05)


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        # A forked child that has not reached its setsid() yet has no group of its own, and no children either:
        # the signal goes to it alone (it is unreaped, so the pid is still its).
        try:
            os.kill(pgid, sig)
        except (ProcessLookupError, PermissionError):
            pass
    except PermissionError:
        pass


def _kill_group(pid: int, reap: Callable[[], int]) -> None:
    """SIGTERM lets the backend's teardown run; SIGKILL then takes whatever is left of the group."""
    _signal_group(pid, signal.SIGTERM)
    try:
        _wait_unreaped(pid, 2.0)
    finally:
        _signal_group(pid, signal.SIGKILL)
        reap()
