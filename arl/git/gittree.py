"""A folder as a git tree, computed as data: no git process, no config, no attributes, nothing ignored.

The host imports an agent's workspace with it, and `arl eval` inside the sandbox computes the same tree id, so
the tree the host verifies and commits is, by construction, the tree the agent evaluated. Everything in the folder
is hostile input: the walk is iterative (no recursion limit), never follows a link, opens files with O_NOFOLLOW,
and turns every entry git cannot or must not hold into a problem that names its path, never an exception.
Standard library only: this module also runs inside the sandbox."""

from __future__ import annotations

import hashlib
import os
import stat
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from arl.git.gitnames import attributes_problem, is_attributes, name_problem

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW
FILE, EXEC, LINK, DIR = b"100644", b"100755", b"120000", b"40000"
# One folder being walked: its fd, its path from the root, the names still to visit, the entries made so far.
_Frame = tuple[int, bytes, list[bytes], list[tuple[bytes, bytes, str]]]


@dataclass(frozen=True)
class Limits:
    max_depth: int = 64
    max_path_bytes: int = 1024
    max_files: int = 10_000
    max_bytes: int = 200 * 1024 * 1024


@dataclass
class Scan:
    """The result of a walk. `tree` is the root tree's id ("" when a strict walk stopped at a problem)."""

    tree: str
    problems: list[str] = field(default_factory=list)
    files: int = 0
    bytes: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems


class _Stop(Exception):
    pass


def object_id(kind: bytes, data: bytes, algo: str = "sha1") -> str:
    h = hashlib.new(algo)
    h.update(kind + b" %d\0" % len(data))
    h.update(data)
    return h.hexdigest()


def empty_tree(algo: str = "sha1") -> str:
    return object_id(b"tree", b"", algo)


def tree_bytes(entries: list[tuple[bytes, bytes, str]]) -> bytes:
    """(name, mode, hex id) entries in git's order: a folder sorts as if its name ended in '/'."""
    ordered = sorted(entries, key=lambda e: e[0] + b"/" if e[1] == DIR else e[0])
    return b"".join(mode + b" " + name + b"\0" + bytes.fromhex(oid) for name, mode, oid in ordered)


class LooseStore:
    """Writes objects into a repository's object folder the way git does (zlib, temp file + rename)."""

    def __init__(self, objects_dir: Path, algo: str = "sha1") -> None:
        self.dir = objects_dir
        self.algo = algo

    def path(self, oid: str) -> Path:
        return self.dir / oid[:2] / oid[2:]

    def has(self, oid: str) -> bool:
        return self.path(oid).exists()

    def put(self, kind: bytes, data: bytes, oid: str | None = None) -> str:
        oid = oid or object_id(kind, data, self.algo)
        target = self.path(oid)
        if target.exists():
            return oid
        target.parent.mkdir(exist_ok=True)
        tmp = target.parent / f"tmp_obj_{os.getpid()}_{oid[:8]}"
        with open(tmp, "wb") as f:
            f.write(zlib.compress(kind + b" %d\0" % len(data) + data, 1))
        os.chmod(tmp, 0o444)
        os.replace(tmp, target)
        return oid


# (ino, size, mtime_ns, ctime_ns) -> blob id. ctime cannot be set by the agent, so a rewritten file is re-hashed.
HashCache = dict[tuple[int, int, int, int], str]


def scan(
    root: Path,
    limits: Limits = Limits(),
    *,
    strict: bool = True,
    algo: str = "sha1",
    store: LooseStore | None = None,
    cache: HashCache | None = None,
) -> Scan:
    """Walk `root` and compute its git tree (and write its objects to `store`, if given).

    strict: the first problem stops the walk (a verdict is rejected with it). Not strict: offending entries are
    left out and listed, and the rest is imported (salvaging a crashed attempt)."""
    result = Scan(tree="")
    try:
        root_fd = os.open(root, _DIR_FLAGS)
    except OSError as e:
        result.problems.append(f"the workspace folder cannot be read ({e.strerror})")
        return result
    try:
        result.tree = _walk(root_fd, limits, strict, algo, store, cache, result)
    except _Stop:
        result.tree = ""
    finally:
        os.close(root_fd)
    return result


def _walk(
    root_fd: int,
    limits: Limits,
    strict: bool,
    algo: str,
    store: LooseStore | None,
    cache: HashCache | None,
    out: Scan,
) -> str:
    def problem(rel: bytes, why: str) -> None:
        shown = rel.decode("utf-8", "backslashreplace")
        shown = shown if len(shown) <= 200 else shown[:100] + "..." + shown[-60:]
        out.problems.append(f"{shown!r}: {why}")
        if strict:
            raise _Stop

    put: Callable[[bytes, bytes], str] = (
        (lambda kind, data: store.put(kind, data)) if store else (lambda kind, data: object_id(kind, data, algo))
    )
    frames: list[_Frame] = []

    def enter(fd: int, rel: bytes) -> None:
        try:
            names = sorted(os.listdir(fd), reverse=True)  # popped from the end: visited in order
        except OSError as e:
            os.close(fd)
            problem(rel or b".", f"unreadable folder ({e.strerror})")
            names, fd = [], -1
        frames.append((fd, rel, [os.fsencode(n) for n in names], []))

    enter(os.dup(root_fd), b"")
    root_tree = ""
    try:
        root_tree = _loop(frames, enter, problem, put, limits, store, cache, out)
    finally:
        for frame in frames:
            if frame[0] >= 0:
                os.close(frame[0])
    return root_tree


def _loop(
    frames: list[_Frame],
    enter: Callable[[int, bytes], None],
    problem: Callable[[bytes, str], None],
    put: Callable[[bytes, bytes], str],
    limits: Limits,
    store: LooseStore | None,
    cache: HashCache | None,
    out: Scan,
) -> str:
    root_tree = ""
    while frames:
        fd, rel, names, made = frames[-1]
        if not names:
            frames.pop()
            if fd >= 0:
                os.close(fd)
            tree = put(b"tree", tree_bytes(made)) if made or not frames else ""
            if frames:
                if tree:  # git holds no empty folders: an empty one is simply not there
                    frames[-1][3].append((rel.rsplit(b"/", 1)[-1], DIR, tree))
            else:
                root_tree = tree
            continue
        name = names.pop()
        path = rel + b"/" + name if rel else name
        if path.count(b"/") + 1 > limits.max_depth:
            problem(path, f"deeper than {limits.max_depth} folders ([sandbox] max_depth)")
            continue
        if len(path) > limits.max_path_bytes:
            problem(path, f"a path longer than {limits.max_path_bytes} bytes")
            continue
        try:
            st = os.lstat(name, dir_fd=fd)
        except OSError as e:
            problem(path, f"cannot be read ({e.strerror})")
            continue
        why = name_problem(name, st.st_mode)
        if why:
            problem(path, why)
            continue
        if stat.S_ISDIR(st.st_mode) or stat.S_ISLNK(st.st_mode):
            folder = stat.S_ISDIR(st.st_mode)
            if not folder and not _count(out, limits, 0, path, problem):
                continue
            try:  # a folder is opened (never followed), a link read: either may be gone or unreadable by now
                got = os.open(name, _DIR_FLAGS, dir_fd=fd) if folder else os.readlink(name, dir_fd=fd)
            except OSError as e:
                problem(path, f"unreadable {'folder' if folder else 'symlink'} ({e.strerror})")
                continue
            if isinstance(got, int):
                enter(got, path)
            else:
                made.append((name, LINK, put(b"blob", os.fsencode(got))))
            continue
        if not stat.S_ISREG(st.st_mode):
            kind = "a FIFO" if stat.S_ISFIFO(st.st_mode) else "a socket" if stat.S_ISSOCK(st.st_mode) else "a device"
            problem(path, f"{kind}, not a file, folder or symlink")
            continue
        if not _count(out, limits, st.st_size, path, problem):
            continue
        key = (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        attributes = is_attributes(name)  # read every time: its content decides whether it may be kept
        oid = cache.get(key) if cache is not None and not attributes else None
        if oid is None or (store is not None and not store.has(oid)):
            data = _read(fd, name, st, path, problem)
            if data is None:
                continue
            why = attributes_problem(data) if attributes else None
            if why:
                problem(path, why)
                continue
            oid = put(b"blob", data)
            if cache is not None:
                cache[key] = oid
        # setuid, setgid and sticky never travel: git keeps only "executable or not".
        made.append((name, EXEC if st.st_mode & 0o100 else FILE, oid))
    return root_tree


def _count(out: Scan, limits: Limits, size: int, path: bytes, problem: Callable[[bytes, str], None]) -> bool:
    if out.files + 1 > limits.max_files:
        problem(path, f"more than {limits.max_files} files ([sandbox] max_files)")
        return False
    if out.bytes + size > limits.max_bytes:
        problem(path, f"more than {limits.max_bytes / (1024 * 1024):g} MB in all ([sandbox] max_workspace_mb)")
        return False
    out.files += 1
    out.bytes += size
    return True


def _read(
    dir_fd: int, name: bytes, before: os.stat_result, path: bytes, problem: Callable[[bytes, str], None]
) -> bytes | None:
    try:
        # O_NONBLOCK: a FIFO swapped in after the lstat must not hang the host; fstat checks what was opened.
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=dir_fd)
    except OSError as e:
        problem(path, f"cannot be read ({e.strerror})")
        return None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode) or st.st_size != before.st_size:
            problem(path, "changed while it was read")
            return None
        data = f.read(before.st_size + 1)
    if len(data) != before.st_size:
        problem(path, "changed while it was read")
        return None
    return data
