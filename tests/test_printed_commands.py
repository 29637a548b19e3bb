"""What arl prints is what runs: logging shims for `git` and `docker` first on PATH record every invocation (argv and
the GIT_/DOCKER_/ARL_ environment it was given); a loop with keeps, a discard, a veto and a crash must print exactly
the state-changing ones, in order, with that environment, and name what it writes itself in `# arl:` lines."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from .conftest import BIN, arl, git, run
from .loophelpers import check_history, set_toml

pytestmark = pytest.mark.docker

ENV = {"ARL_BASE_FROM": "debootstrap"}

# Each invocation is one file named by its start time in ns and its pid (pids wrap around: not an order),
# NUL-separated: the parent's name (`arl`, `arl-step`; a git hook's python is not arl), the program, the number
# of arguments, the arguments, then its environment.
SHIM = """#!/bin/sh
f=$(date +%s%N)-$$
{{ printf '%s\\0{name}\\0%s\\0' "$(cat /proc/$PPID/comm)" "$#"; printf '%s\\0' "$@"; env -0; }} \\
  > "{log}/$f"
exec {real} "$@"
"""

NOT_ARLS = {"PWD", "OLDPWD", "SHLVL", "_", "DATA", "ARGS", "MAKEFLAGS", "MAKELEVEL", "MAKEOVERRIDES", "MFLAGS"}

# Queries that change nothing: arl may run them without a printed line. Everything else must be printed.
READ_ONLY = {
    ("git", "rev-parse"),
    ("git", "cat-file"),
    ("git", "ls-tree"),
    ("git", "diff-tree"),
    ("git", "for-each-ref"),
    ("git", "symbolic-ref"),
    ("git", "log"),
    ("git", "config"),  # only reads: `git config user.email`, `git config --get ...` (checked below)
    ("docker", "inspect"),
    ("docker", "ps"),
    ("docker", "top"),
    ("docker", "logs"),
    ("docker", "version"),
    ("docker", "info"),
    ("docker", "buildx"),  # `docker buildx version`
    ("docker", "image"),  # `docker image inspect` (checked below)
}

Call = tuple[dict[str, str], list[str]]  # (environment given, argv with the program's bare name)

# One session per verdict, each ending in `arl verdict`: keep, discard, a keep the host measures worse (vetoed),
# a crash (exit 1, no verdict), a better keep; then discards. notes.md survives a relaunch: the plan goes on.
AGENT = r"""
import json, re, subprocess, sys
from pathlib import Path

MODEL = Path("/workspace/pipeline/model.py")
DONE = Path("/workspace/notes.md")
PLAN = ["keep", "discard", "veto", "crash", "keep"] + ["discard"] * 20


def score():
    out = subprocess.run(["arl", "eval", "--json"], capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])["score"]


def value(name):
    return float(re.search(rf"^{name} = (\S+)$", MODEL.read_text(), re.M).group(1))


def put(name, v):
    MODEL.write_text(re.sub(rf"^{name} = \S+$", f"{name} = {v!r}", MODEL.read_text(), flags=re.M))


def better_keep():
    base = score()
    for name in ("HEIGHT", "SHARPNESS", "CENTER", "SLOPE", "OFFSET"):
        old = value(name)
        for v in (old * 1.5 + 0.1, old * 0.7 - 0.1, old * 2 + 0.3, old * 0.4 - 0.3):
            put(name, v)
            if score() < base - 1e-6:
                return f"{name} = {v:.4g}"
        put(name, old)
    raise SystemExit("no improvement found")


for action in PLAN[len(DONE.read_text().splitlines()) if DONE.exists() else 0 :]:
    with DONE.open("a") as f:
        f.write(action + "\n")
    if action == "crash":
        put("OFFSET", 7.0)
        sys.exit(1)
    if action == "keep":
        notes = better_keep()
    else:
        put("HEIGHT", value("HEIGHT") + 50.0)  # far worse
        score()
        notes = "worse, claimed as a keep" if action == "veto" else "worse"
    subprocess.run(["arl", "verdict", "keep" if action == "veto" else action, "--notes", notes], capture_output=True)
"""


def shims(tmp: Path) -> tuple[Path, Path]:
    """A folder holding the `git` and `docker` shims, and the folder their calls are logged into."""
    folder, log = tmp / "shims", tmp / "calls"
    folder.mkdir()
    log.mkdir()
    for name in ("git", "docker"):
        real = shutil.which(name)
        assert real, f"{name} is not installed"
        (folder / name).write_text(SHIM.format(name=name, log=log, real=shlex.quote(real)))
        (folder / name).chmod(0o755)
    return folder, log


def logged(log: Path, parent: str, inherited: dict[str, str]) -> list[Call]:
    """The calls made by processes named `parent` (not a git hook's), with the environment arl added: what differs
    from `inherited`, but for what the shim's shell sets and what make exports to its recipe's commands."""
    calls: list[Call] = []
    for path in sorted(log.iterdir(), key=lambda p: [int(x) for x in p.name.split("-")]):
        fields = path.read_bytes().decode("utf-8", "replace").split("\0")
        if fields[0].strip() != parent:
            continue
        n = int(fields[2])
        argv = [fields[1], *fields[3 : 3 + n]]
        env = dict(e.split("=", 1) for e in fields[3 + n :] if "=" in e)
        given = {k: v for k, v in env.items() if inherited.get(k) != v and k not in NOT_ARLS}
        calls.append((given, argv))
    return calls


def printed(stderr: str) -> list[Call]:
    """The `+ ` lines of git and docker, parsed as the shell would: leading NAME=value words are the environment,
    redirections and a trailing `&` are the shell's, a pipe separates two commands."""
    calls: list[Call] = []
    lines = stderr.splitlines()
    for i, line in enumerate(lines):
        if not line.startswith("+ "):
            continue
        text, more = line[2:], i + 1
        while True:  # a quoted argument may span lines (a commit message): the line ends where the quote does
            try:
                words = shlex.split(text)
                break
            except ValueError:
                text += "\n" + lines[more]
                more += 1
        commands: list[list[str]] = [[]]
        skip = False
        for w in words:
            if skip:
                skip = False
            elif w == "|":
                commands.append([])
            elif w in (">", ">>", "<"):
                skip = True
            elif w not in ("&", "2>&1"):
                commands[-1].append(w)
        for cmd in commands:
            env: dict[str, str] = {}
            while cmd and re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", cmd[0]):
                k, _, v = cmd.pop(0).partition("=")
                env[k] = v
            if cmd and cmd[0] in ("git", "docker"):
                calls.append((env, cmd))
    return calls


def read_only(argv: list[str]) -> bool:
    prog, args = argv[0], argv[1:]
    while prog == "git" and args and args[0] in ("-C", "-c"):
        args = args[2:]
    if not args or (prog, args[0]) not in READ_ONLY:
        return False
    if (prog, args[0]) == ("git", "config"):
        return "--get" in args or len([a for a in args[1:] if not a.startswith("-")]) <= 1
    if (prog, args[0]) == ("docker", "image"):
        return args[1:2] == ["inspect"]
    return True


def compare(ran: list[Call], shown: list[Call]) -> list[str]:
    """Walk both lists in order: every printed line is the next call that ran, env included; a call with no
    printed line must be a read-only query. Returns what differs."""
    problems: list[str] = []
    j = 0
    for env, argv in ran:
        if j < len(shown) and shown[j] == (env, argv):
            j += 1
        elif not read_only(argv):
            line = " ".join(shlex.quote(w) for w in [*(f"{k}={v}" for k, v in env.items()), *argv])
            problems.append(f"ran, not printed as it ran: {line[:300]}")
            if j < len(shown):
                problems.append(f"  the next printed line: {shown[j][0]} {' '.join(shown[j][1])[:300]}")
            if j < len(shown) and shown[j][1] == argv:
                problems.append(f"  printed with the environment {shown[j][0]}")
                j += 1
    problems += [f"printed, never ran: {' '.join(argv)[:300]}" for _, argv in shown[j:]]
    return problems


ARGS = ["--agent", "command", "--max-iterations", "5", "--plateau-threshold", "0"]


@pytest.mark.parametrize("loop", ["arl run", "make research"])
def test_every_state_changing_git_and_docker_command_is_printed_as_it_ran(lab: Path, tmp_path: Path, loop: str) -> None:
    (lab / "scripted_agent.py").write_text(AGENT)
    set_toml(lab, "agent", "command", ["python3", "-u", "/workspace/lab/scripted_agent.py"])
    git(lab, "add", "-A")
    git(lab, "commit", "-qm", "scripted agent")
    folder, log = shims(tmp_path)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "DOCKER_BUILDKIT", "ARL_QUIET"))},
        "PATH": f"{folder}{os.pathsep}{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "ARL_BASE_FROM": "debootstrap",
    }
    if loop == "arl run":
        cmd, parent = [str(BIN / "arl"), "run", "--data", "data", *ARGS], "arl"
    else:
        cmd, parent = ["make", "research", "DATA=data", f"ARGS={' '.join(ARGS)}"], "arl-step"
    proc = subprocess.run(cmd, cwd=lab, env=env, capture_output=True, text=True, timeout=600)
    out, err = proc.stdout, proc.stderr
    assert proc.returncode == 0, out[-3000:] + err[-3000:]
    outcomes = [r["outcome"] for r in check_history(lab)]
    assert outcomes == ["baseline", "keep", "discard", "vetoed", "crash", "keep"], (outcomes, out[-3000:])

    ran = logged(log, parent, env)
    shown = printed(err)
    assert ran and shown
    problems = compare(ran, shown)
    assert not problems, "\n".join(problems)
    assert any(e.get("GIT_INDEX_FILE") for e, a in shown if "commit" in a), "the keep's commit shows its index"

    # What arl writes itself: one `# arl:` line per row, per ack, per import.
    notes = [ln[len("# arl: ") :] for ln in err.splitlines() if ln.startswith("# arl: ")]
    appended = [int(m.group(1)) for n in notes if (m := re.match(r"appended experiment (\d+) ", n))]
    assert appended == list(range(6)), notes
    assert len([n for n in notes if re.match(r"wrote \S*ack-\d+\.json", n)]) == 4, notes  # one per verdict
    assert len([n for n in notes if n.startswith("imported ")]) >= 5, notes  # 4 verdicts and the crash's salvage
    assert any(n.startswith("moved ") and ".git/objects" in n for n in notes), notes  # a recorded import

    # -q (or ARL_QUIET=1, which reaches every step of the Makefile's loop) hides them all.
    if loop == "arl run":
        quiet = arl("-q", "run", "--data", "data", *ARGS[:2], "--max-iterations", "1", cwd=lab, timeout=300, env=ENV)
    else:
        once = f"ARGS={' '.join(ARGS[:2])} --max-iterations 1"
        quiet = run(["make", "research", "DATA=data", once], cwd=lab, timeout=300, env={**ENV, "ARL_QUIET": "1"})
    assert [r["outcome"] for r in check_history(lab)][-1] == "discard"
    assert not [ln for ln in quiet.stderr.splitlines() if ln.startswith(("+ ", "# arl: "))], quiet.stderr[-2000:]
