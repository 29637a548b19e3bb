"""arl.git.gittree and arl.git.treefs against real git and hostile folders: plain pytest, no Docker, a few seconds.

gittree computes a folder's git tree as data; every id here is checked against what git itself computes, and every
problem kind against a corpus of bad input, strict and not. treefs writes trees out and empties folders an agent
left: the hostile corpus holds what an agent can build (unreadable, deep, longer than PATH_MAX, FIFOs, sockets,
links out of the folder, repositories). Cases that need an unprivileged user (a chmod 000 folder means nothing to
root) run in a forked child that drops to the user nobody when the tests run as root."""

from __future__ import annotations

import errno
import json
import os
import resource
import select
import shutil
import signal
import socket
import stat
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from arl.git import treefs
from arl.git.gittree import DIR, EXEC, FILE, LINK, HashCache, Limits, LooseStore, name_problem, object_id, scan

NOBODY = 65534
ROOT = os.geteuid() == 0
# git with no configuration but ours: nothing global or system-wide can change an id.
GIT_ENV = {
    **{k: v for k, v in os.environ.items() if not k.startswith("GIT_")},
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": "/dev/null",
    "HOME": "/nonexistent",
    "XDG_CONFIG_HOME": "/nonexistent",
}


# ---------------------------------------------------------------------------------------------------------------
# git, folders, users


def git_proc(
    repo: Path, *args: str | bytes, input: bytes | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        ["git", "-C", str(repo), *args], input=input, capture_output=True, env={**GIT_ENV, **(env or {})}, timeout=60
    )


def git(repo: Path, *args: str | bytes, input: bytes | None = None, env: dict[str, str] | None = None) -> bytes:
    proc = git_proc(repo, *args, input=input, env=env)
    if proc.returncode != 0:
        raise AssertionError(f"git {args!r} exited {proc.returncode}: {proc.stderr.decode(errors='replace')}")
    return proc.stdout


def init_repo(path: Path, object_format: str = "sha1") -> Path:
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "-q", "-b", "main", f"--object-format={object_format}")
    git(path, "config", "core.autocrlf", "false")
    return path


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return init_repo(tmp_path / "repo")


@pytest.fixture(autouse=True)
def _umask_and_cleanup(tmp_path: Path) -> Iterator[None]:
    old = os.umask(0o022)  # files 0644, folders 0755 whatever the caller's umask: the user nobody reads them
    yield
    os.umask(old)
    treefs.wipe(tmp_path)  # deep, unreadable leftovers that pytest's own cleanup would stumble on


@dataclass(frozen=True)
class Mode:
    data: bytes
    mode: int


@dataclass(frozen=True)
class Link:
    target: bytes


@dataclass(frozen=True)
class EmptyDir:
    pass


Entry = bytes | Mode | Link | EmptyDir
Spec = dict[str | bytes, Entry]


def build(root: Path, spec: Spec) -> Path:
    """Make `root` hold `spec` (plain bytes: a 0644 file)."""
    top = os.fsencode(root)
    os.makedirs(top, exist_ok=True)
    made = {top}
    for key, what in spec.items():
        path = top + b"/" + os.fsencode(key)
        folder = os.path.dirname(path)
        if folder not in made:
            os.makedirs(folder, exist_ok=True)
            made.add(folder)
        if isinstance(what, EmptyDir):
            os.makedirs(path, exist_ok=True)
        elif isinstance(what, Link):
            os.symlink(what.target, path)
        else:
            data, mode = (what.data, what.mode) if isinstance(what, Mode) else (what, 0o644)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            if mode != 0o644:  # (the umask is 022 here)
                os.chmod(path, mode)
    return root


def listing(spec: Spec) -> dict[bytes, bytes]:
    """What `git ls-tree -r` must list for `spec`: path -> mode."""
    out: dict[bytes, bytes] = {}
    for key, what in spec.items():
        if isinstance(what, Link):
            out[os.fsencode(key)] = LINK
        elif isinstance(what, Mode):
            out[os.fsencode(key)] = EXEC if what.mode & 0o100 else FILE
        elif isinstance(what, bytes):
            out[os.fsencode(key)] = FILE
    return out


def content(what: Entry) -> bytes:
    if isinstance(what, Link):
        return what.target
    if isinstance(what, Mode):
        return what.data
    assert isinstance(what, bytes)
    return what


def git_tree(repo: Path, folder: Path, how: str = "raw", write: bool = False) -> str:
    """The id git gives `folder` (inside `repo`), built in a private index.

    "add": `git add -f -A` with core.excludesFile=/dev/null: -f adds what a .gitignore (or info/exclude) ignores,
    so no ignore rule has a say, but .gitattributes filters (eol, ident) still rewrite what is added.
    "plain": a plain `git add -A`, ignore rules and all (to show a case would differ).
    "raw": every file hashed with `git hash-object --no-filters`, every link's target hashed as it is, the index
    filled by hand with `update-index --index-info`: git never reads the folder's .gitignore or .gitattributes, which
    is exactly what the scan must do (the folder is data, not a worktree). Ids only unless `write`: no object is
    written (hence write-tree --missing-ok), which keeps a 2,000-file folder fast."""
    index = repo / ".git" / f"test-index-{os.urandom(4).hex()}"
    env = {"GIT_INDEX_FILE": str(index)}
    rel = folder.relative_to(repo).as_posix()
    try:
        if how == "add":
            git(repo, "-c", "core.excludesFile=/dev/null", "add", "-f", "-A", "--", rel, env=env)
        elif how == "plain":
            git(repo, "add", "-A", "--", rel, env=env)
        else:
            records = []
            w = ["-w"] if write else []
            files: list[tuple[bytes, bytes, bytes]] = []
            todo = [os.fsencode(folder)]  # not os.walk: it recurses, and a folder may be 1,100 deep
            while todo:
                here = todo.pop()
                for name in os.listdir(here):
                    full = os.path.join(here, name)
                    at = os.path.relpath(full, os.fsencode(repo))
                    st = os.lstat(full)
                    if stat.S_ISDIR(st.st_mode):
                        todo.append(full)
                    elif stat.S_ISLNK(st.st_mode):
                        oid = git(repo, "hash-object", *w, "--stdin", input=os.readlink(full)).strip()
                        records.append(LINK + b" " + oid + b"\t" + at + b"\0")
                    elif stat.S_ISREG(st.st_mode):
                        files.append((at, EXEC if st.st_mode & 0o100 else FILE, full))
            if files:
                oids = git(repo, "hash-object", *w, "--no-filters", "--", *[f[2] for f in files]).split()
                records += [mode + b" " + oid + b"\t" + at + b"\0" for (at, mode, _), oid in zip(files, oids)]
            git(repo, "update-index", "-z", "--index-info", input=b"".join(records), env=env)
        proc = git_proc(repo, "write-tree", "--missing-ok", f"--prefix={rel}/", env=env)
        if proc.returncode != 0 and b"not found" in proc.stderr:
            return git(repo, "mktree", input=b"").decode().strip()  # nothing git keeps: the empty tree
        assert proc.returncode == 0, proc.stderr
        return proc.stdout.decode().strip()
    finally:
        index.unlink(missing_ok=True)


def ls_tree(repo: Path, tree: str) -> list[tuple[bytes, bytes, str]]:
    """(path, mode, id) of every file and link of `tree`, in git's order."""
    rows = []
    for record in git(repo, "ls-tree", "-r", "-z", tree).split(b"\0"):
        if record:
            meta, path = record.split(b"\t", 1)
            mode, _kind, oid = meta.split(b" ")
            rows.append((path, mode, oid.decode()))
    return rows


def cat_blobs(repo: Path, oids: set[str]) -> dict[str, bytes]:
    out = git(repo, "cat-file", "--batch", input=b"".join(o.encode() + b"\n" for o in sorted(oids)))
    got: dict[str, bytes] = {}
    at = 0
    while at < len(out):
        eol = out.index(b"\n", at)
        oid, kind, size = out[at:eol].split(b" ")
        assert kind == b"blob", out[at:eol]
        got[oid.decode()] = out[eol + 1 : eol + 1 + int(size)]
        at = eol + 1 + int(size) + 1
    return got


def fsck_clean(repo: Path) -> None:
    proc = git_proc(repo, "fsck", "--strict", "--no-dangling")
    noise = [line for line in proc.stderr.splitlines() if not line.startswith(b"notice:")]
    assert proc.returncode == 0 and proc.stdout == b"" and noise == [], (proc.stdout, proc.stderr)


class chdir:
    """contextlib.chdir, which Python 3.10 lacks."""

    def __init__(self, path: Path) -> None:
        self.path, self.old = path, -1

    def __enter__(self) -> None:
        self.old = os.open(".", os.O_RDONLY | os.O_DIRECTORY)  # by fd: nobody cannot walk back by name
        os.chdir(self.path)

    def __exit__(self, *exc: object) -> None:
        os.fchdir(self.old)
        os.close(self.old)


def in_child(cwd: Path, fn: Callable[[], object], nobody: bool = False, timeout: float = 60) -> object:
    """fn() run in `cwd` by a forked child, its JSON-able result sent back; a child still busy after `timeout`
    seconds is killed and the test fails (a walk or a wipe that never ends is a failure, not a hung suite).

    nobody: the child becomes the user nobody when the tests run as root (root reads, writes and removes whatever
    the modes say, so a chmod 000 folder only means something to another user); run unprivileged, the child keeps
    the user. Paths fn uses must be relative to cwd: the parents of a pytest folder are root's own (mode 0700)."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child, which always leaves through os._exit
        os.close(read_end)
        out: dict[str, object]
        try:
            os.chdir(cwd)
            try:
                if nobody and ROOT:
                    os.setgroups([])
                    os.setresgid(NOBODY, NOBODY, NOBODY)
                    os.setresuid(NOBODY, NOBODY, NOBODY)
            except OSError as e:
                out = {"skip": f"cannot become the user nobody ({e.strerror})"}
            else:
                out = {"ok": fn()}
        except BaseException as e:
            out = {"error": f"{type(e).__name__}: {e}"}
        with os.fdopen(write_end, "w") as f:
            f.write(json.dumps(out))
        os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end) as f:
        ready, _, _ = select.select([f], [], [], timeout)
        if not ready:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            pytest.fail(f"still running after {timeout} s: killed")
        got = json.loads(f.read() or '{"error": "the child died"}')
    os.waitpid(pid, 0)
    if "skip" in got:
        pytest.skip(got["skip"])
    assert "error" not in got, got["error"]
    return got["ok"]


def as_nobody(cwd: Path, fn: Callable[[], object]) -> object:
    return in_child(cwd, fn, nobody=True)


def bind_socket(path: Path) -> None:
    """A unix socket file at `path` (bound from its folder: the full path may be over the 108-byte limit)."""
    with chdir(path.parent), socket.socket(socket.AF_UNIX) as s:
        s.bind(path.name)


def chain(parent: Path, names: list[str], leaf: bytes | None = b"bottom\n", lock_bottom: bool = False) -> None:
    """Folders parent/names[0]/names[1]/..., made one open folder at a time (the kernel refuses a path longer than
    PATH_MAX), with a file `f` at the bottom; lock_bottom: the last folder ends up chmod 000."""
    fd = os.open(parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for name in names:
            try:
                os.mkdir(name, 0o755, dir_fd=fd)
            except FileExistsError:
                pass
            sub = os.open(name, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = sub
        if leaf is not None:
            out = os.open("f", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644, dir_fd=fd)
            os.write(out, leaf)
            os.close(out)
        if lock_bottom:
            os.fchmod(fd, 0)
    finally:
        os.close(fd)


def names_path(problem: str, path: str | bytes) -> bool:
    """Does the problem name `path` first (a long one is shown by its head and tail)?"""
    shown = path if isinstance(path, str) else path.decode("utf-8", "backslashreplace")
    if len(shown) <= 200:
        return problem.startswith(repr(shown) + ": ")
    return problem.startswith(repr(shown[:100])[:-1]) and shown[-60:] in problem


# ---------------------------------------------------------------------------------------------------------------
# 1. the same tree id as git


BIG = bytes(range(256)) * 4096  # 1 MiB, every byte value
EQUAL: dict[str, tuple[Spec, bool]] = {
    # name: (folder, whether `git add -f -A` agrees; where it does not, the case shows that it would differ)
    "nested": (
        {
            "top.txt": b"top\n",
            "a/b/c/deep.txt": b"deep\n",
            "a/b/side.txt": b"side\n",
            "a/empty-file": b"",
            "z/bin": b"\x00\x01binary\xff\r\n",
            "big.bin": BIG,
        },
        True,
    ),
    "executable": (
        {
            "run.sh": Mode(b"#!/bin/sh\necho hi\n", 0o755),
            "bin/tool": Mode(b"tool", 0o700),
            "bin/user-x-only": Mode(b"ux", 0o744),
            "data.txt": b"data",
            "read-only.txt": Mode(b"ro", 0o444),
        },
        True,
    ),
    "symlinks": (
        {
            "target.txt": b"t",
            "relative": Link(b"target.txt"),
            "absolute": Link(b"/etc/passwd"),
            "up-and-out": Link(b"../../outside"),
            "to-folder": Link(b"sub"),
            "sub/f": b"f",
            "sub/back": Link(b"../target.txt"),
            "dangling": Link(b"no/such/file"),
            "loop": Link(b"loop"),
            "binary-target": Link(b"\xff\xfe.txt"),
        },
        True,
    ),
    "non-utf8": (
        {
            b"caf\xe9.txt": b"latin-1 name",
            b"\xff\xfe/inner\x80.bin": b"x",
            "ünïcödé.txt": b"u",
            "日本語/ファイル": b"ja",
        },
        True,
    ),
    "tricky-order": (
        {
            "a/x": b"1",
            "a/b/c": b"2",
            "a/b.c": b"3",
            "a/b-c/d": b"4",
            "a-b": b"5",
            "a.b": b"6",
            "a.txt": b"7",
            "a0": b"8",
            "ab/c": b"9",
            "A": b"10",
            "a b": b"11",
            "foo/x": b"12",
            "foo.bar/y": b"13",
            "foo-": b"14",
            "foo0": b"15",
        },
        True,
    ),
    "odd-names": (
        {
            "with space.txt": b"1",
            "tab\tname": b"2",
            "new\nline": b"3",
            "back\\slash": b"4",
            "-dash": b"5",
            "#hash": b"6",
            'quote"s': b"7",
            "colon:name": b"8",
            "...": b"9",
            "..dots": b"10",
            ".hidden": b"11",
            "trailing.": b"12",
            "trailing ": b"13",
            ".gitkeep": b"",
            ".gitmodules-not": Link(b"x"),
            "gitmod~5": Link(b"x"),  # not one of git's short names for .gitmodules (those stop at ~4)
            "ctrl\x01\x7f": b"14",
        },
        True,
    ),
    "empty-folders": (
        {"e": EmptyDir(), "f/g/h": EmptyDir(), "f/k.txt": b"k", "only/empty/inside": EmptyDir()},
        True,
    ),
    "nothing-but-empty-folders": ({"e/f": EmptyDir(), "g": EmptyDir()}, True),
    "gitignore": (
        {
            ".gitignore": b"*.log\nbuild/\nsecret*\n",
            "keep.txt": b"k",
            "x.log": b"log",
            "build/out.o": b"o",
            "secret.key": b"s",
            "sub/.gitignore": b"*\n",
            "sub/hidden.txt": b"h",
        },
        True,  # with -f and no excludes file; a plain `git add -A` leaves the ignored files out
    ),
    "gitattributes": (
        {
            ".gitattributes": b"* text\n*.bin binary\n[attr]plain -diff\n",
            "crlf.txt": b"one\r\ntwo\r\n",
            "lf.txt": b"a\nb\n",
        },
        False,  # git add turns CRLF into LF: the scan keeps the bytes
    ),
    "64-deep-and-1024-byte-path": (
        {
            "d/" * 63 + "f": b"deepest allowed",
            "/".join(["n" * 200] * 4) + "/" + "m" * 220: b"longest allowed",
        },
        True,
    ),
}


@pytest.mark.parametrize("case", EQUAL)
def test_same_tree_as_git(repo: Path, case: str) -> None:
    spec, add_agrees = EQUAL[case]
    ws = build(repo / "ws", spec)
    got = scan(ws)
    assert got.ok and got.problems == []
    assert got.tree == git_tree(repo, ws, "raw")
    if add_agrees:
        assert got.tree == git_tree(repo, ws, "add")
    else:
        assert got.tree != git_tree(repo, ws, "add")  # git's filters would have rewritten the content
    if case == "gitignore":
        assert got.tree != git_tree(repo, ws, "plain")  # ignore rules would have left files out
    entries = listing(spec)
    assert got.files == len(entries)
    assert got.bytes == sum(len(content(w)) for w in spec.values() if isinstance(w, bytes | Mode))
    assert scan(ws, strict=False).tree == got.tree


def test_sha256_repository(tmp_path: Path) -> None:
    repo = init_repo(tmp_path / "repo256", "sha256")
    spec = {**EQUAL["nested"][0], **EQUAL["symlinks"][0], **EQUAL["executable"][0]}
    ws = build(repo / "ws", spec)
    want = git_tree(repo, ws, "add")
    assert len(want) == 64
    assert scan(ws, algo="sha256").tree == want
    stored = scan(ws, algo="sha256", store=LooseStore(repo / ".git" / "objects", algo="sha256"))
    assert stored.tree == want
    git(repo, "cat-file", "-e", f"{want}^{{tree}}")
    fsck_clean(repo)


# ---------------------------------------------------------------------------------------------------------------
# 2. objects written into a repository


def everything() -> Spec:
    """Every folder of the equality corpus, each under its own name (but the one already at the limits)."""
    return {
        os.fsencode(case) + b"/" + os.fsencode(k): v
        for case, (spec, _) in EQUAL.items()
        if not case.startswith("64-deep")
        for k, v in spec.items()
    }


def test_objects_written_are_what_git_reads(repo: Path, tmp_path: Path) -> None:
    spec = everything()
    ws = build(tmp_path / "ws", spec)
    objects = repo / ".git" / "objects"
    got = scan(ws, store=LooseStore(objects))
    assert got.ok
    git(repo, "cat-file", "-e", f"{got.tree}^{{tree}}")
    rows = ls_tree(repo, got.tree)
    assert {path: mode for path, mode, _ in rows} == listing(spec)
    assert len(rows) == len(listing(spec))
    blobs = cat_blobs(repo, {oid for _, _, oid in rows})
    by_path = {os.fsencode(k): v for k, v in spec.items()}
    for path, _, oid in rows:
        assert blobs[oid] == content(by_path[path]), path
    fsck_clean(repo)

    # The tree reads into an index (git's own path checks), and that index writes the same tree back.
    index = {"GIT_INDEX_FILE": str(tmp_path / "index")}
    git(repo, "read-tree", got.tree, env=index)
    assert git(repo, "write-tree", env=index).decode().strip() == got.tree

    # Objects are stored like git's: read-only, no temporary file left; a second scan adds nothing.
    stored = sorted(p for p in objects.rglob("*") if p.is_file())
    assert stored and all(stat.S_IMODE(p.stat().st_mode) == 0o444 for p in stored)
    assert not [p for p in stored if p.name.startswith("tmp_obj")]
    assert scan(ws, store=LooseStore(objects)).tree == got.tree
    assert sorted(p for p in objects.rglob("*") if p.is_file()) == stored


def test_a_salvaged_tree_is_valid_too(repo: Path, tmp_path: Path) -> None:
    """Not strict, the bad entries are left out and what is written is still a tree git accepts."""
    ws = build(
        tmp_path / "ws", {"ok.txt": b"ok", "sub/ok": b"ok2", "sub/.git/HEAD": b"ref: x", ".gitmodules": Link(b"x")}
    )
    os.mkfifo(ws / "sub" / "fifo")
    got = scan(ws, strict=False, store=LooseStore(repo / ".git" / "objects"))
    assert len(got.problems) == 3
    assert {p for p, _, _ in ls_tree(repo, got.tree)} == {b"ok.txt", b"sub/ok"}
    fsck_clean(repo)
    git(repo, "read-tree", got.tree, env={"GIT_INDEX_FILE": str(tmp_path / "index")})


# ---------------------------------------------------------------------------------------------------------------
# 3. modes: only "executable or not" travels


FILE_MODES = {
    0o6755: EXEC,  # setuid + setgid
    0o4755: EXEC,
    0o2755: EXEC,
    0o1755: EXEC,  # sticky
    0o4644: FILE,
    0o1644: FILE,
    0o700: EXEC,
    0o744: EXEC,
    0o100 | 0o400: EXEC,
    0o655: FILE,  # group and others may execute, the owner may not: git keeps only the owner's bit
    0o611: FILE,
    0o600: FILE,
    0o444: FILE,
}
DIR_MODES = [0o1777, 0o2755, 0o700, 0o555]


def test_only_the_owner_execute_bit_travels(repo: Path) -> None:
    ws = repo / "ws"
    plain = repo / "plain"
    for folder, exact in ((ws, True), (plain, False)):
        for mode, want in FILE_MODES.items():
            build(folder, {f"f{mode:o}": Mode(b"same content", mode if exact else 0o755 if want == EXEC else 0o644)})
        for mode in DIR_MODES:
            build(folder, {f"d{mode:o}/inner": b"x"})
    for mode in FILE_MODES:
        if ROOT:  # (a user outside the file's group cannot set setgid: the kernel drops it)
            assert stat.S_IMODE(os.lstat(ws / f"f{mode:o}").st_mode) == mode  # the bits really are there
    for mode in DIR_MODES:
        os.chmod(ws / f"d{mode:o}", mode)
    got = scan(ws, store=LooseStore(repo / ".git" / "objects"))
    modes = {path: m for path, m, _ in ls_tree(repo, got.tree)}
    assert modes == {
        **{f"f{mode:o}".encode(): want for mode, want in FILE_MODES.items()},
        **{f"d{mode:o}/inner".encode(): FILE for mode in DIR_MODES},
    }
    assert got.tree == git_tree(repo, ws, "add") == scan(plain).tree


# ---------------------------------------------------------------------------------------------------------------
# 4. every problem, strict and not


GOOD: Spec = {
    "keep.txt": b"keep\n",
    "sub/keep.txt": b"sub\n",
    "sub/deeper/keep.txt": b"deeper\n",
    "link": Link(b"keep.txt"),
}


def plus(make: Callable[[Path], object]) -> Callable[[Path, bool], None]:
    """A folder of good entries, and `make`'s bad one when asked."""

    def builder(root: Path, bad: bool) -> None:
        build(root, GOOD)
        if bad:
            make(root)

    return builder


def deep(levels: int, ok_at: int = 3) -> Callable[[Path, bool], None]:
    """A chain of `levels` folders `d` with a good file at level `ok_at` (the part a salvage keeps)."""

    def builder(root: Path, bad: bool) -> None:
        build(root, {"keep.txt": b"keep\n", "d/" * ok_at + "ok.txt": b"ok\n"})
        if bad:
            chain(root, ["d"] * levels)

    return builder


def long_names(root: Path, bad: bool) -> None:
    names = [f"{'n' * 199}{i}" for i in range(1, 7)]  # 200 bytes each: the 6th level's path has 1,205
    build(root, {**GOOD, names[0] + "/ok.txt": b"ok\n"})
    if bad:
        chain(root, names, leaf=None)
        build(root, {"/".join(names) + "/f": b"too long a path\n"})


def many(root: Path, bad: bool) -> None:
    """150 files and links (both count) under max_files=100; the salvage keeps the first 100 in order."""
    for i in range(150 if bad else 100):
        build(root, {f"f{i:03}": Link(b"x") if i % 2 else b"%d" % i})


def heavy(root: Path, bad: bool) -> None:
    """Four files of 500,000 bytes under max_bytes=1,000,000: the first two fit exactly, an empty one still fits."""
    build(root, {"big0": b"0" * 500_000, "big1": b"1" * 500_000, "zz-empty": b""})
    if bad:
        build(root, {"big2": b"2" * 500_000, "big3": b"3" * 500_000})


def device(root: Path) -> None:
    try:
        os.mknod(root / "dev", stat.S_IFCHR | 0o600, os.makedev(1, 3))
    except PermissionError:
        pytest.skip("this machine refuses mknod")


def locked_folder(root: Path) -> None:
    build(root, {"locked/inner/f": b"f", "locked/g": b"g"})
    os.chmod(root / "locked", 0)


def locked_file(root: Path) -> None:
    build(root, {"sub/secret": Mode(b"s", 0)})


def unsearchable(root: Path) -> None:
    build(root, {"rx/one": b"1", "rx/two": b"2"})
    os.chmod(root / "rx", 0o444)  # readable names, but no entry can be looked up


@dataclass(frozen=True)
class Bad:
    build: Callable[[Path, bool], None]  # the good entries, and the bad ones when asked
    path: str | bytes  # the first offending path, which a strict scan names
    why: str  # words of the reason
    limits: Limits = field(default_factory=Limits)
    count: int = 1  # problems a scan that is not strict lists
    who: str = "me"  # "nobody": scanned by an unprivileged user; "root": only root can build it


def mk(spec: Spec) -> Callable[[Path], object]:
    return lambda root: build(root, spec)


DOTGIT = "named like .git"
OWN_FILE = "not a regular file, named"
PROBLEMS: dict[str, Bad] = {
    ".git-folder-depth-3": Bad(plus(lambda r: git(r / "sub" / "deeper", "init", "-q")), "sub/deeper/.git", DOTGIT),
    ".git-file-gitdir": Bad(plus(mk({"sub/.git": b"gitdir: ../../.git\n"})), "sub/.git", DOTGIT),
    ".GIT": Bad(plus(mk({"sub/.GIT/config": b"[core]\n"})), "sub/.GIT", DOTGIT),
    ".git.": Bad(plus(mk({".git.": b"x"})), ".git.", DOTGIT),
    ".git-space": Bad(plus(mk({".git ": b"x"})), ".git ", DOTGIT),
    ".git::$INDEX_ALLOCATION": Bad(plus(mk({".git::$INDEX_ALLOCATION/x": b"x"})), ".git::$INDEX_ALLOCATION", DOTGIT),
    "git~1": Bad(plus(mk({"sub/git~1/HEAD": b"x"})), "sub/git~1", DOTGIT),
    "GIT~1": Bad(plus(mk({"GIT~1": b"x"})), "GIT~1", DOTGIT),
    "backslash-.git": Bad(plus(mk({"x\\.git": b"x"})), "x\\.git", DOTGIT),
    "hfs-.git": Bad(plus(mk({".g\u200cit/HEAD": b"x"})), ".g\u200cit", DOTGIT),
    "link-.gitmodules": Bad(plus(mk({".gitmodules": Link(b"keep.txt")})), ".gitmodules", "symlink named .gitmodules"),
    "link-.GITATTRIBUTES": Bad(
        plus(mk({"sub/.GITATTRIBUTES": Link(b"../keep.txt")})), "sub/.GITATTRIBUTES", "symlink named .gitattributes"
    ),
    "link-.gitignore": Bad(
        plus(mk({"sub/deeper/.gitignore": Link(b"keep.txt")})), "sub/deeper/.gitignore", "symlink named .gitignore"
    ),
    "link-.mailmap": Bad(plus(mk({".mailmap": Link(b"/etc/passwd")})), ".mailmap", "symlink named .mailmap"),
    "link-gitmod~1": Bad(plus(mk({"gitmod~1": Link(b"keep.txt")})), "gitmod~1", "symlink named .gitmodules"),
    "link-.gitmodules.": Bad(plus(mk({".gitmodules.": Link(b"keep.txt")})), ".gitmodules.", "symlink named .gitmod"),
    "file-.gitmodules": Bad(
        plus(mk({".gitmodules": b'[submodule "x"]\n\tupdate = !touch /tmp/x\n'})), ".gitmodules", "a .gitmodules"
    ),
    "file-gitmod~1": Bad(plus(mk({"sub/gitmod~1": b"[core]\n"})), "sub/gitmod~1", "a .gitmodules"),
    "folder-.gitmodules": Bad(plus(mk({".gitmodules/x": b"x"})), ".gitmodules", "a .gitmodules"),
    "folder-.gitattributes": Bad(plus(mk({"sub/.gitattributes/x": b"x"})), "sub/.gitattributes", OWN_FILE),
    "folder-.GitIgnore": Bad(plus(mk({".GitIgnore/x": b"x"})), ".GitIgnore", OWN_FILE),
    "folder-.mailmap": Bad(plus(mk({"sub/.mailmap/x": b"x"})), "sub/.mailmap", OWN_FILE),
    "fifo-.gitattributes": Bad(plus(lambda r: os.mkfifo(r / "sub" / ".gitattributes")), "sub/.gitattributes", OWN_FILE),
    "export-subst": Bad(plus(mk({".gitattributes": b"*.py export-subst\n"})), ".gitattributes", "export-subst"),
    "export-ignore-in-a-macro": Bad(
        plus(mk({"sub/.gitattributes": b"# hide it\n[attr]hide export-ignore\nsecret.py hide\n"})),
        "sub/.gitattributes",
        "export-ignore",
    ),
    "quoted-unset-export-ignore": Bad(
        plus(mk({".gitattributes": b'"a b.py"\t-export-ignore\n'})), ".gitattributes", "export-ignore"
    ),
    "ident": Bad(plus(mk({".gitattributes": b"*.py ident\n"})), ".gitattributes", "attribute ident"),
    "filter": Bad(plus(mk({".gitattributes": b"* filter=lfs\n"})), ".gitattributes", "attribute filter"),
    "eol": Bad(plus(mk({".gitattributes": b"*.py text eol=crlf\n"})), ".gitattributes", "attribute eol"),
    "encoding": Bad(plus(mk({"gitatt~1": b"*.py working-tree-encoding=UTF-16\n"})), "gitatt~1", "working-tree"),
    "2048-byte-attributes-line": Bad(
        plus(mk({".gitattributes": b"*" + b" " * 2047 + b"\n"})), ".gitattributes", "2048 bytes or more"
    ),
    "fifo": Bad(plus(lambda r: os.mkfifo(r / "sub" / "fifo")), "sub/fifo", "a FIFO"),
    "socket": Bad(plus(lambda r: bind_socket(r / "sub" / "sock")), "sub/sock", "a socket"),
    "device": Bad(plus(device), "dev", "a device", who="root"),
    "70-deep": Bad(deep(70), "/".join(["d"] * 65), "deeper than 64 folders"),
    "10-deep-max-5": Bad(deep(10), "/".join(["d"] * 6), "deeper than 5 folders", Limits(max_depth=5)),
    "1100-deep": Bad(deep(1100), "/".join(["d"] * 65), "deeper than 64 folders"),
    "path-over-1024-bytes": Bad(
        long_names, "/".join(f"{'n' * 199}{i}" for i in range(1, 7)), "a path longer than 1024 bytes"
    ),
    "150-files-max-100": Bad(many, "f100", "more than 100 files", Limits(max_files=100), count=50),
    "2MB-max-1MB": Bad(heavy, "big2", "MB in all", Limits(max_bytes=1_000_000), count=2),
    "one-2MB-file": Bad(plus(mk({"huge": b"h" * 2_000_000})), "huge", "in all", Limits(max_bytes=1_000_000)),
    "chmod-000-folder": Bad(plus(locked_folder), "locked", "unreadable folder", who="nobody"),
    "chmod-000-file": Bad(plus(locked_file), "sub/secret", "cannot be read", who="nobody"),
    "folder-without-search": Bad(plus(unsearchable), "rx/one", "cannot be read", count=2, who="nobody"),
}


DEFAULT = Limits()


def scan_as_nobody(cwd: Path, root: str, limits: Limits = DEFAULT, strict: bool = True) -> tuple[str, list[str]]:
    got = as_nobody(cwd, lambda: (lambda s: [s.tree, s.problems])(scan(Path(root), limits, strict=strict)))
    assert isinstance(got, list)
    tree, problems = got
    assert isinstance(tree, str) and isinstance(problems, list)
    return tree, [str(p) for p in problems]


def scan_by(who: str, root: Path, limits: Limits, strict: bool) -> tuple[str, list[str]]:
    if who == "nobody":
        os.chmod(root, 0o755)  # nobody's child starts in there
        return scan_as_nobody(root, ".", limits, strict)
    got = scan(root, limits, strict=strict)
    return got.tree, got.problems


@pytest.mark.parametrize("case", PROBLEMS)
def test_problem(repo: Path, tmp_path: Path, case: str) -> None:
    bad = PROBLEMS[case]
    if bad.who == "root" and not ROOT:
        pytest.skip("making a device node needs root")
    ws = tmp_path / "ws"
    ws.mkdir()
    bad.build(ws, True)

    tree, problems = scan_by(bad.who, ws, bad.limits, strict=True)
    assert tree == ""
    assert len(problems) == 1, problems
    assert names_path(problems[0], bad.path), (problems[0], bad.path)
    assert bad.why in problems[0]

    # Not strict: the good entries are imported exactly as git would hold them, and every bad one is listed.
    good = repo / "good"
    good.mkdir()
    bad.build(good, False)
    tree, salvaged = scan_by(bad.who, ws, bad.limits, strict=False)
    assert tree == git_tree(repo, good, "raw")
    assert len(salvaged) == bad.count, salvaged
    assert salvaged[0] == problems[0]
    assert all(bad.why in p for p in salvaged)


def test_root_reads_a_chmod_000_folder(tmp_path: Path) -> None:
    """As root, the same chmod 000 folder is simply imported (root reads anyway): the user matters, not the mode."""
    if not ROOT:
        pytest.skip("only root reads a chmod 000 folder")
    ws = build(tmp_path / "ws", GOOD)
    locked_folder(ws)
    got = scan(ws)
    assert got.ok and got.files == len(listing(GOOD)) + 2


def test_the_workspace_itself_unusable(tmp_path: Path) -> None:
    target = build(tmp_path / "real", GOOD)
    os.symlink(target, tmp_path / "link")
    for root in (tmp_path / "link", tmp_path / "missing", target / "keep.txt"):
        for strict in (True, False):
            got = scan(root, strict=strict)
            assert got.tree == "" and len(got.problems) == 1
            assert got.problems[0].startswith("the workspace folder cannot be read"), got.problems
    locked = build(tmp_path / "locked", GOOD)
    os.chmod(locked, 0)
    os.chmod(tmp_path, 0o755)  # nobody may look the folder up, not read it
    tree, problems = scan_as_nobody(tmp_path, "locked")
    assert tree == "" and len(problems) == 1 and "cannot be read" in problems[0]


def test_depth_and_path_length_boundaries(repo: Path) -> None:
    ws = build(repo / "ws", {"d/" * 4 + "f": b"depth 5"})
    assert scan(ws, Limits(max_depth=5)).ok
    assert not scan(ws, Limits(max_depth=4)).ok
    assert scan(ws, Limits(max_path_bytes=len("d/" * 4 + "f"))).ok
    assert not scan(ws, Limits(max_path_bytes=len("d/" * 4 + "f") - 1)).ok
    many(ws, True)
    assert scan(ws, Limits(max_files=151)).ok and not scan(ws, Limits(max_files=150)).ok


def test_1100_levels_deep_with_the_depth_limit_raised(repo: Path) -> None:
    """The walk is iterative: 1,100 nested folders are a tree (no RecursionError) when the limits allow them."""
    ws = repo / "ws"
    ws.mkdir()
    chain(ws, ["d"] * 1100)
    # The walk keeps one descriptor open per level: 1,100 levels need more than a common soft limit of 1,024.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 2048 <= hard or hard == resource.RLIM_INFINITY:
        resource.setrlimit(resource.RLIMIT_NOFILE, (2048, hard))
    elif soft < 2048:
        pytest.skip(f"at most {hard} open files here")
    try:
        got = scan(ws, Limits(max_depth=2000, max_path_bytes=10_000))
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert got.ok and got.files == 1
    assert got.tree == git_tree(repo, ws, "raw")


# The name corpus: (name, whether it is a symlink, whether the scan refuses it). git's own verdict is checked too:
# whatever `git fsck --strict` reports or `git read-tree` refuses, the scan must refuse.
NAMES: list[tuple[bytes, bool, bool]] = [
    *[
        (n, False, True)
        for n in [
            b".git",
            b".GIT",
            b".Git",
            b".git.",
            b".git ",
            b".git. . ",
            b".gitmodules",  # any .gitmodules: submodule settings that fsck and hosting servers refuse
            b"gitmod~1",
            b".GitModules",
            b".git::$INDEX_ALLOCATION",
            b".git:stream",
            b"git~1",
            b"GIT~1",
            b"git~1.",
            b"x\\.git",
            b"x\\git~1\\y",
            ".g\u200cit".encode(),
            ".\ufeffgit".encode(),
            ".gi\u200ft".encode(),
            ".GI\u206at".encode(),
        ]
    ],
    *[
        (n, False, False)
        for n in [
            b".gitx",
            b"git",
            b".gi",
            b"x.git",
            b"git~2",
            b".git-foo",
            b"..git",
            b" .git",
            b".git.x",
            b"\xff.git",
            b".gitattributes",
            b".gitignore",
            b".mailmap",
            ".g\u202fit".encode(),  # a narrow no-break space is not one HFS ignores
        ]
    ],
    *[
        (n, True, True)
        for n in [
            b".git",
            b".gitmodules",
            b".GITMODULES",
            b".gitmodules.",
            b".gitmodules :x",
            b"gitmod~1",
            b"GITMOD~4",
            b"gi7eba~1",
            b"gi7eb~12",
            b"gitmod~1. ",
            b"x\\gitmod~1",
            ".g\u200citmodules".encode(),
            ".gitmodules\ufeff".encode(),
            b".gitattributes",
            b"gitatt~1",
            b"gi7d29~1",
            b".gitignore",
            b"gitign~2",
            b"gi250a~9",
            b".mailmap",
            b"mailma~3",
            b"maba30~1",
        ]
    ],
    *[
        (n, True, False)
        for n in [b"gitmod~5", b"gitmodules", b".gitmodulesx", b"gi7eba~0", b"gitmod~1x", b"link", b".gitkeep"]
    ],
]


@pytest.fixture(scope="module")
def git_refuses(tmp_path_factory: pytest.TempPathFactory) -> set[tuple[bytes, bool]]:
    """The (name, is_link) pairs git flags: `git fsck --strict` reports their tree (even at its info level, as for a
    .gitignore symlink) or `git read-tree` refuses it. One tree per name, one fsck for all, a read-tree each."""
    repo = init_repo(tmp_path_factory.mktemp("names") / "repo")
    blob = git(repo, "hash-object", "-w", "--stdin", input=b"keep.txt").strip()
    batch = b"".join(
        (LINK if is_link else FILE) + b" blob " + blob + b"\t" + name + b"\0\0" for name, is_link, _ in NAMES
    )
    trees = git(repo, "mktree", "-z", "--batch", input=batch).decode().split()
    assert len(trees) == len(NAMES)
    proc = git_proc(repo, "fsck", "--strict", "--no-dangling")
    fsck = (proc.stdout + proc.stderr).decode()
    refused = set()
    for (name, is_link, _), tree in zip(NAMES, trees):
        index = {"GIT_INDEX_FILE": str(repo / ".git" / "test-index")}
        if tree in fsck or git_proc(repo, "read-tree", tree, env=index).returncode != 0:
            refused.add((name, is_link))
    return refused


@pytest.mark.parametrize(("name", "is_link", "refused"), NAMES, ids=[repr(n)[2:-1] + "@" * s for n, s, _ in NAMES])
def test_name_corpus(git_refuses: set[tuple[bytes, bool]], name: bytes, is_link: bool, refused: bool) -> None:
    why = name_problem(name, stat.S_IFLNK if is_link else stat.S_IFREG)
    assert (why is not None) == refused, why
    if (name, is_link) in git_refuses:
        assert why is not None, "git refuses this name: the scan must too"


def test_git_flags_the_metadata_the_scan_refuses(repo: Path) -> None:
    """The instrument: what the scan refuses beyond names, git really flags. `git fsck --strict` reports a
    .gitmodules with a command, a folder named .gitattributes and a 2,048-byte attributes line; `git archive`
    of a tree with export-subst writes other bytes than the tree holds; a harmless .gitattributes passes."""

    def fsck_of(mode: bytes, name: bytes, data: bytes) -> str:
        """`git fsck --strict`'s complaints about a commit holding one entry (a folder holds a file `x`)."""
        probe = init_repo(repo.parent / f"probe-{os.urandom(4).hex()}")  # fsck reads every object: one repo each
        oid = git(probe, "hash-object", "-w", "--stdin", input=data).strip()
        if mode == DIR:
            oid = git(probe, "mktree", "-z", input=FILE + b" blob " + oid + b"\tx\0").strip()
        kind = b"tree" if mode == DIR else b"blob"
        tree = git(probe, "mktree", "-z", input=mode + b" " + kind + b" " + oid + b"\t" + name + b"\0").strip()
        ident = ("-c", "user.name=t", "-c", "user.email=t@t")
        commit = git(probe, *ident, "commit-tree", tree, "-m", "t").strip()
        git(probe, "update-ref", "HEAD", commit)
        proc = git_proc(probe, "fsck", "--strict", "--no-dangling")
        return (proc.stdout + proc.stderr).decode() if proc.returncode else ""

    assert "gitmodulesUpdate" in fsck_of(FILE, b".gitmodules", b'[submodule "x"]\n\tpath = x\n\tupdate = !id\n')
    assert "gitattributesBlob" in fsck_of(DIR, b".gitattributes", b"x")
    assert "gitattributesLineLength" in fsck_of(FILE, b".gitattributes", b"*" + b" " * 2047 + b"\n")
    assert fsck_of(FILE, b".gitattributes", b"*" + b" " * 2046 + b"\n* text\n") == ""
    spec: Spec = {".gitattributes": b"v.txt export-subst\n", "v.txt": b"$Format:%H$\n"}
    assert "export-subst" in scan(build(repo / "ws", spec)).problems[0]
    tree = git_tree(repo, repo / "ws", "raw", write=True)
    commit = git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit-tree", tree, "-m", "t").strip()
    archived = git(repo, "archive", "--format=tar", commit.decode())
    assert b"$Format:%H$" not in archived  # git rewrote the file: the archive is not the tree


def test_git_refuses_what_it_should(git_refuses: set[tuple[bytes, bool]]) -> None:
    """The corpus check above only means something if git really refuses the names it is meant to."""
    assert (b".git", False) in git_refuses and (b"gitmod~1", True) in git_refuses
    assert (".g\u200cit".encode(), False) in git_refuses and (b".gitkeep", True) not in git_refuses


# ---------------------------------------------------------------------------------------------------------------
# 5. the hash cache


def test_hash_cache(repo: Path) -> None:
    ws = build(repo / "ws", {"a.txt": b"aaaa", "b/c.txt": b"cccc", "link": Link(b"a.txt")})
    cache: HashCache = {}
    first = scan(ws, cache=cache)
    assert len(cache) == 2  # the files; a link's target is read each time
    assert scan(ws, cache=cache).tree == first.tree == git_tree(repo, ws, "raw")

    # The cache is really what answers: a wrong id in it shows...
    poisoned: HashCache = {key: object_id(b"blob", b"poison") for key in cache}
    assert scan(ws, cache=dict(poisoned)).tree != first.tree
    # ...except where a store is given and lacks the object: then the file is hashed again.
    assert scan(ws, cache=dict(poisoned), store=LooseStore(repo / ".git" / "objects")).tree == first.tree

    # Same size, same inode, mtime put back to the nanosecond: the ctime changed, so the new content is hashed.
    path = ws / "a.txt"
    before = os.lstat(path)
    time.sleep(0.05)  # a coarse clock (an older kernel) could otherwise give the rewrite the same ctime
    with open(path, "r+b") as f:
        f.write(b"AAAA")
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = os.lstat(path)
    assert (after.st_ino, after.st_size, after.st_mtime_ns) == (before.st_ino, before.st_size, before.st_mtime_ns)
    assert after.st_ctime_ns != before.st_ctime_ns
    again = scan(ws, cache=cache)
    assert again.tree == git_tree(repo, ws, "raw") == scan(ws).tree
    assert again.tree != first.tree


# ---------------------------------------------------------------------------------------------------------------
# 6. wipe


HOSTILE_TOP = {
    "plain.txt",
    "locked",
    "read-only",
    "no-mode",
    "deep",
    "long",
    "fifo",
    "sock",
    "out",
    "out-abs",
    "out-file",
    "sub",
    "nested",
    ".arl-wipe",
}
LONG = ["L" * 250] * 20  # 5,020 bytes of path: more than PATH_MAX (4,096)


def build_hostile(outside_abs: str) -> None:
    """In the current folder's `ws`: everything an agent can leave that makes removing it hard (the nested
    repository is a copy of `repo`: git refuses to run for nobody in a folder whose parents it cannot read)."""
    ws = Path("ws")
    build(ws, {"plain.txt": b"x", "locked/inner/f": b"f", "locked/g": b"g", "read-only/f": b"f"})
    os.symlink("../../../outside", ws / "locked" / "inner" / "out")
    os.chmod(ws / "locked" / "inner", 0)
    os.chmod(ws / "locked", 0)
    os.chmod(ws / "read-only", 0o500)
    build(ws, {"no-mode": Mode(b"n", 0)})
    (ws / "deep").mkdir()
    chain(ws / "deep", ["d"] * 1100, lock_bottom=True)
    (ws / "long").mkdir()
    chain(ws / "long", LONG, lock_bottom=True)
    os.mkfifo(ws / "fifo")
    bind_socket(ws / "sock")
    os.symlink("../outside", ws / "out")  # relative: an unprivileged user resolves it too
    os.symlink(outside_abs, ws / "out-abs")
    os.symlink("../outside/sentinel", ws / "out-file")
    build(ws, {"sub/up": Link(b"../../outside"), "sub/file": b"f"})
    shutil.copytree("repo", ws / "nested", symlinks=True)
    build(ws, {".arl-wipe/sub/f": b"a folder named like wipe's own trash", ".arl-wipe/g": b"g"})
    os.chmod(ws / ".arl-wipe" / "sub", 0)
    os.chmod(ws, 0)


@pytest.mark.parametrize("who", ["me", "nobody"])
def test_wipe_a_hostile_folder(tmp_path: Path, who: str) -> None:
    if who == "nobody" and not ROOT:
        pytest.skip("these tests already run unprivileged: the 'me' case is that one")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "sentinel").write_bytes(b"precious")
    ws = tmp_path / "ws"
    ws.mkdir()
    nested = init_repo(tmp_path / "repo")
    build(nested, {"f.txt": b"tracked"})
    git(nested, "add", "-A")
    git(nested, "-c", "user.name=t", "-c", "user.email=t@e", "commit", "-qm", "nested")
    if who == "nobody":
        os.chmod(tmp_path, 0o755)
        for p in (ws, outside, outside / "sentinel"):
            os.chown(p, NOBODY, NOBODY)  # following a link, nobody could remove the sentinel
        as_nobody(tmp_path, lambda: build_hostile(str(outside)))
    else:
        with chdir(tmp_path):
            build_hostile(str(outside))

    # The folder is as hostile as meant.
    assert stat.S_IMODE(os.lstat(ws).st_mode) == 0
    os.chmod(ws, 0o700)
    assert set(os.listdir(ws)) == HOSTILE_TOP
    assert stat.S_ISFIFO(os.lstat(ws / "fifo").st_mode) and stat.S_ISSOCK(os.lstat(ws / "sock").st_mode)
    assert [p for p in (ws / "nested" / ".git" / "objects").rglob("*") if p.is_file() and p.stat().st_mode & 0o222 == 0]
    assert len(os.fsencode(ws / "long" / "/".join(LONG))) > 4096
    with pytest.raises(OSError) as too_long:
        os.lstat(ws / "long" / "/".join(LONG))
    assert too_long.value.errno == errno.ENAMETOOLONG
    os.chmod(ws, 0)

    left = in_child(tmp_path, lambda: treefs.wipe(Path("ws")), nobody=who == "nobody")
    assert left == []
    assert ws.is_dir() and not ws.is_symlink()
    assert os.listdir(ws) == []
    assert os.listdir(outside) == ["sentinel"] and (outside / "sentinel").read_bytes() == b"precious"
    assert treefs.wipe(ws) == [] and os.listdir(ws) == []


def test_wipe_never_follows_the_root_link(tmp_path: Path) -> None:
    target = build(tmp_path / "target", GOOD)
    os.symlink(target, tmp_path / "link")
    assert treefs.wipe(tmp_path / "link") != []
    assert scan(target).files == len(listing(GOOD))


def test_wipe_a_folder_named_like_its_trash(tmp_path: Path) -> None:
    """An agent's own `.arl-wipe` folder (full, or a file, or a link out) is just another entry."""
    outside = build(tmp_path / "outside", {"sentinel": b"s"})
    for what in ("folder", "file", "link"):
        ws = tmp_path / f"ws-{what}"
        build(ws, {"keep": b"k"})
        if what == "folder":
            build(ws, {".arl-wipe/f": b"f", ".arl-wipe/sub/g": b"g"})
        elif what == "file":
            build(ws, {".arl-wipe": b"f"})
        else:
            os.symlink(outside, ws / ".arl-wipe")
        assert treefs.wipe(ws) == [], what
        assert os.listdir(ws) == [], what
    assert os.listdir(outside) == ["sentinel"]


# ---------------------------------------------------------------------------------------------------------------
# 7. write and remove


def tree_entries(repo: Path, tree: str) -> list[tuple[bytes, bytes, bytes]]:
    rows = ls_tree(repo, tree)
    blobs = cat_blobs(repo, {oid for _, _, oid in rows})
    return [(path, mode, blobs[oid]) for path, mode, oid in rows]


def test_write_gives_back_the_tree(repo: Path, tmp_path: Path) -> None:
    spec = everything()
    tree = git_tree(repo, build(repo / "src", spec), "raw", write=True)
    entries = tree_entries(repo, tree)
    dest = tmp_path / "dest"
    dest.mkdir()
    treefs.write(dest, entries)
    assert scan(dest).tree == tree
    for path, mode, data in entries:
        full = os.fsencode(dest) + b"/" + path
        st = os.lstat(full)
        if mode == LINK:
            assert stat.S_ISLNK(st.st_mode) and os.readlink(full) == data
        else:
            assert stat.S_ISREG(st.st_mode) and bool(st.st_mode & 0o100) == (mode == EXEC)


def outside_link(dest: Path, outside: Path, name: str) -> None:
    (dest / name).parent.mkdir(parents=True, exist_ok=True)
    os.symlink(outside, dest / name)


WRITE_OBSTACLES: dict[str, tuple[Callable[[Path, Path], object], list[tuple[bytes, bytes, bytes]]]] = {
    # what is already in the destination, and the entries written over it
    "link-to-outside-folder": (lambda d, o: outside_link(d, o, "a"), [(b"a/b", FILE, b"hello")]),
    "relative-link-out": (lambda d, o: os.symlink("../outside", d / "a"), [(b"a/b", FILE, b"hello")]),
    "link-deeper": (
        lambda d, o: outside_link(d, o, "x/y"),
        [(b"x/w", FILE, b"w"), (b"x/y/z", EXEC, b"z"), (b"x/y/zz/deep", FILE, b"d")],
    ),
    "dangling-link": (lambda d, o: os.symlink("/nonexistent/x", d / "a"), [(b"a/b", FILE, b"hello")]),
    "file-where-a-folder-goes": (lambda d, o: build(d, {"a": b"old"}), [(b"a/b", FILE, b"hello")]),
    "link-to-outside-file": (lambda d, o: os.symlink(o / "file", d / "c"), [(b"c", FILE, b"new")]),
    "link-where-a-link-goes": (lambda d, o: outside_link(d, o, "l"), [(b"l", LINK, b"target")]),
    "old-file": (lambda d, o: build(d, {"f": Mode(b"old content", 0o755)}), [(b"f", FILE, b"new")]),
}


@pytest.mark.parametrize("case", WRITE_OBSTACLES)
def test_write_never_through_a_link(tmp_path: Path, case: str) -> None:
    setup, entries = WRITE_OBSTACLES[case]
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "file").write_bytes(b"outside file")
    before = sorted(os.listdir(outside))
    dest = tmp_path / "dest"
    dest.mkdir()
    setup(dest, outside)
    treefs.write(dest, entries)
    assert sorted(os.listdir(outside)) == before and (outside / "file").read_bytes() == b"outside file"
    clean = tmp_path / "clean"
    clean.mkdir()
    treefs.write(clean, entries)
    assert scan(dest).tree == scan(clean).tree
    for path, mode, data in entries:
        full = dest / os.fsdecode(path)
        for parent in full.relative_to(dest).parents:
            assert not (dest / parent).is_symlink()
        assert full.is_symlink() == (mode == LINK)
        assert (os.readlink(full).encode() if mode == LINK else full.read_bytes()) == data


def test_write_refuses_a_folder_where_a_file_goes(tmp_path: Path) -> None:
    dest = build(tmp_path / "dest", {"a/inner": b"x"})
    with pytest.raises(IsADirectoryError):
        treefs.write(dest, [(b"a", FILE, b"file")])
    assert (dest / "a" / "inner").read_bytes() == b"x"
    with pytest.raises(FileExistsError):
        treefs.write(dest, [(b"a/inner", FILE, b"y")], replace=False)


def test_remove(tmp_path: Path) -> None:
    outside = build(tmp_path / "outside", {"x": b"outside"})
    dest = build(tmp_path / "dest", {"a/b/c": b"c", "a/b/d": b"d", "a/e": b"e", "keep": b"k", "f/g": b"g"})
    os.symlink(outside, dest / "lnk")
    treefs.remove(dest, [b"a/b/c", b"a/b/d", b"lnk/x", b"f", b"missing/file"])
    assert not (dest / "a" / "b").exists()  # emptied, so gone
    assert (dest / "a" / "e").read_bytes() == b"e"  # a still holds e
    assert (outside / "x").read_bytes() == b"outside"  # never through the link
    assert (dest / "f" / "g").read_bytes() == b"g"  # a folder's content is never removed
    assert (dest / "keep").exists() and (dest / "lnk").is_symlink()
    treefs.remove(dest, [b"a/e"])
    assert sorted(os.listdir(dest)) == ["f", "keep", "lnk"]


# ---------------------------------------------------------------------------------------------------------------
# 8. deterministic and fast


def test_2000_files(repo: Path) -> None:
    spec: Spec = {f"d{i // 50:02}/f{i:04}": b"file %d\n" % i for i in range(2000)}
    spec.update({f"links/l{i}": Link(b"../d00/f%04d" % i) for i in range(20)})
    ws = build(repo / "ws", spec)
    got = scan(ws)
    assert got.ok and got.files == 2020
    assert got.tree == scan(ws).tree == git_tree(repo, ws, "raw")
