"""Running docker and git command lines through plumbum, printing each one first."""

from __future__ import annotations

import os
import shlex
import sys
from typing import Any

from .errors import ArlError

# ARL_QUIET=1 hides the command lines (benchmarks); they are printed by default so a user can replay them.
_QUIET = os.environ.get("ARL_QUIET") == "1"


def echo(line: str) -> None:
    if not _QUIET:
        print(f"+ {line}", file=sys.stderr, flush=True)


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
    return tool("docker")


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
    """Run a command; return (code, stdout, stderr). A code not in `ok` is an ArlError naming the command."""
    from plumbum.commands.processes import ProcessExecutionError, ProcessTimedOut

    if not quiet:
        echo(line(cmd))
    if env:
        cmd = cmd.with_env(**env)
    try:
        kw: dict[str, Any] = {"retcode": None, "timeout": timeout}
        if stdin is not None:
            kw["stdin"] = stdin
        code, out, err = cmd.run(**kw)
    except ProcessTimedOut:
        raise ArlError(f"timed out after {timeout:g} s: {line(cmd)}")
    except ProcessExecutionError as e:  # only raised for other failures, since retcode=None
        code, out, err = e.retcode, e.stdout, e.stderr
    except OSError as e:
        raise ArlError(f"cannot run {line(cmd)}: {e.strerror}")
    if ok is not None and code not in ok:
        detail = (err or out or "").strip().splitlines()
        raise ArlError(f"`{line(cmd)}` failed (exit {code}){': ' + detail[-1] if detail else ''}")
    return int(code or 0), str(out or ""), str(err or "")
