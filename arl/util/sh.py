"""Running docker and git command lines through plumbum, printing each one first."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

from arl.errors import ArlError


def quiet() -> bool:
    """ARL_QUIET=1 (or -q, which sets it for the steps a run starts too) hides the command lines; they are printed
    by default so that a user can replay them. Read each time: -q is parsed after this module is imported."""
    return os.environ.get("ARL_QUIET") == "1"


def echo(line: str) -> None:
    """A command line about to run, as a person would paste it into a shell in the lab."""
    if not quiet():
        print(f"+ {line}", file=sys.stderr, flush=True)


def background(argv: list[str], log: os.PathLike[str] | str) -> None:
    """A process arl starts beside itself (the broker, the host service, its forwarder): its line, as a person
    would start it in the background with its output in `log`."""
    echo(f"{shlex.join(argv)} >> {shlex.quote(str(log))} 2>&1 &")


def spawn(
    argv: list[str],
    log: os.PathLike[str] | str,
    *,
    env: dict[str, str] | None = None,
    cwd: os.PathLike[str] | str | None = None,
    own_session: bool = True,
) -> subprocess.Popen[bytes]:
    """Start that process: its line printed (`background`), its output appended to `log`, nothing on its stdin, in
    its own session unless `own_session` is False (then it ends with the caller's, as a SLURM job's do)."""
    background(argv, log)
    with open(log, "ab") as out:  # the child keeps its own descriptor
        return subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=own_session,
        )


def wait_ready(proc: subprocess.Popen[bytes], ready: Callable[[], bool], timeout: float) -> bool:
    """Until `ready()` holds (True), the process has exited or `timeout` seconds have passed (False)."""
    deadline = time.monotonic() + timeout
    while not ready():
        if proc.poll() is not None or time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def note(what: str) -> None:
    """What arl writes itself, with no command to show (git objects of an import, a results row, an ack): one
    `# arl: ...` line naming what and where, a comment when pasted."""
    if not quiet():
        print(f"# arl: {what}", file=sys.stderr, flush=True)


def say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def tool(name: str) -> Any:
    """Look a program up lazily, so `arl --help` works without docker installed."""
    from plumbum import local
    from plumbum.commands.processes import CommandNotFound

    try:
        return local[name]
    except CommandNotFound:
        raise ArlError(f"`{name}` is not installed or not on PATH")


def git(repo: os.PathLike[str] | str) -> Any:
    return tool("git")["-C", str(repo)]


def docker() -> Any:
    """The container engine's CLI: docker, or podman where `[engine] runtime` says so (set for a SLURM job)."""
    return tool(os.environ.get("ARL_RUNTIME") or "docker")


_Result = tuple[int, bytes, str]  # exit code, stdout, stderr (decoded)


def line(cmd: Any) -> str:
    """The shell line of a plumbum command, with the full path of the program shortened to its name."""
    parts = list(cmd.formulate())
    if parts:
        parts[0] = os.path.basename(parts[0])
    return " ".join(shlex.quote(p) for p in parts)


def run(
    cmd: Any,
    *,
    ok: tuple[int, ...] | None = (0,),
    timeout: float | None = None,
    quiet: bool = False,
    stdin: str | None = None,
    env: dict[str, str] | None = None,
) -> tuple[int, str, str]:
    """Run a command; return (code, stdout, stderr). A code not in `ok` is an ArlError naming the command.

    The command runs in its own session and a Ctrl-C waits for it to finish: a `git commit` or `docker run`
    is never cut in half (a half-created container would escape the teardown that follows)."""
    code, out, err = _execute(cmd, None if stdin is None else stdin.encode(), timeout, quiet, env)
    _check(cmd, ok, code, out, err)
    return code, out.decode("utf-8", "replace"), err


def run_bytes(cmd: Any, *, stdin: bytes | None = None, quiet: bool = False) -> tuple[int, bytes, str]:
    """`run` with stdin and stdout as bytes (file names and file contents need not be UTF-8); exit 0 or an error."""
    code, out, err = _execute(cmd, stdin, None, quiet, None)
    _check(cmd, (0,), code, out, err)
    return code, out, err


def env_line(env: dict[str, str] | None, cmd: Any) -> str:
    """The shell line that runs `cmd` with `env` added (`GIT_INDEX_FILE=... git ...`): what a person would paste.
    A variable whose name says it is a secret is shown by name only."""
    shown = [k if _SECRET.search(k) else shlex.quote(f"{k}={v}") for k, v in (env or {}).items()]
    return " ".join([*shown, line(cmd)])


_SECRET = re.compile(r"KEY|TOKEN|SECRET|PASSWORD|CREDENTIAL", re.I)


def _execute(cmd: Any, stdin: bytes | None, timeout: float | None, quiet: bool, env: dict[str, str] | None) -> _Result:
    if not quiet:
        echo(env_line(env, cmd))
    if env:
        cmd = cmd.with_env(**env)
    try:
        proc = cmd.popen(new_session=True, stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL)
    except OSError as e:
        raise ArlError(f"cannot run {line(cmd)}: {e.strerror}")
    data = stdin
    deadline = None if timeout is None else time.monotonic() + timeout
    interrupted = False
    while True:
        try:
            left = None if deadline is None else max(deadline - time.monotonic(), 0.0)
            out_b, err_b = proc.communicate(input=data, timeout=left)
            break
        except KeyboardInterrupt:
            interrupted, data = True, None
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            raise ArlError(f"timed out after {timeout:g} s: {line(cmd)}")
    if interrupted:
        raise KeyboardInterrupt
    return int(proc.returncode), out_b or b"", (err_b or b"").decode("utf-8", "replace")


def _check(cmd: Any, ok: tuple[int, ...] | None, code: int, out: bytes, err: str) -> None:
    if ok is not None and code not in ok:
        detail = (err or out.decode("utf-8", "replace") or "").strip().splitlines()
        raise ArlError(f"`{line(cmd)}` failed (exit {code}){': ' + detail[-1] if detail else ''}")
