"""A pipeline's outputs, read as hostile data: copied by the host into a folder of its own (regular files only, capped
in size, count and depth, links never followed) before the scorer sees them, and parsed as strict JSON."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

from arl.errors import ArlError

MAX_FILES = 100_000
MAX_DEPTH = 32
MAX_JSON_DEPTH = 200  # Python's parser recurses per level: far below the interpreter's limit


class BadOutputs(ArlError):
    """The pipeline's outputs are not something the scorer may read (a link, a FIFO, too large...)."""


def copy_outputs(src: Path, dst: Path, max_bytes: int) -> int:
    """Copy `src` into the new folder `dst`: folders and regular files only (mode 0644/0755 dropped to 0600/0700),
    never following a link. Returns the bytes copied; raises BadOutputs naming the first offending path."""
    total, files = 0, 0
    dst.mkdir(mode=0o700)
    todo: list[tuple[Path, Path, int]] = [(src, dst, 0)]
    while todo:
        here, there, depth = todo.pop()
        if depth > MAX_DEPTH:
            raise BadOutputs(f"outputs: {_rel(here, src)} is nested deeper than {MAX_DEPTH} folders")
        with os.scandir(here) as entries:
            for entry in entries:
                st = entry.stat(follow_symlinks=False)
                rel = _rel(Path(entry.path), src)
                if stat.S_ISDIR(st.st_mode):
                    (there / entry.name).mkdir(mode=0o700)
                    todo.append((Path(entry.path), there / entry.name, depth + 1))
                    continue
                if not stat.S_ISREG(st.st_mode):
                    raise BadOutputs(f"outputs: {rel} is a {_kind(st.st_mode)}, not a regular file")
                files += 1
                if files > MAX_FILES:
                    raise BadOutputs(f"outputs: more than {MAX_FILES} files")
                total += _copy_file(Path(entry.path), there / entry.name, max_bytes - total, rel)
    return total


def _copy_file(src: Path, dst: Path, room: int, rel: str) -> int:
    # O_NOFOLLOW and O_NONBLOCK: a file swapped for a link or a FIFO since the scan is refused, never waited on.
    fd = os.open(src, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise BadOutputs(f"outputs: {rel} is not a regular file")
        with open(fd, "rb", closefd=False) as f, open(dst, "xb") as out:
            data = f.read(room + 1)
            if len(data) > room:
                raise BadOutputs(f"outputs: larger than [backend] max_output_mb (at {rel})")
            out.write(data)
            return len(data)
    finally:
        os.close(fd)


def _rel(path: Path, root: Path) -> str:
    return ascii(str(path.relative_to(root)))[1:-1] or "."


def _kind(mode: int) -> str:
    if stat.S_ISLNK(mode):
        return "symlink"
    if stat.S_ISFIFO(mode):
        return "FIFO"
    if stat.S_ISSOCK(mode):
        return "socket"
    return "device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "special file"


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


def read_json(path: Path, max_bytes: int) -> Any:
    """A strict JSON value from a file the pipeline wrote: no NaN/Infinity, bounded size and nesting."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    with open(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            raise ValueError(f"{path.name} is not a regular file")
        raw = f.read(max_bytes + 1)
    if len(raw) > max_bytes:
        raise ValueError(f"{path.name} is larger than {max_bytes} bytes")
    text = raw.decode("utf-8")
    if _nesting(text) > MAX_JSON_DEPTH:
        raise ValueError(f"{path.name} is nested deeper than {MAX_JSON_DEPTH} levels")
    return json.loads(text, parse_constant=_no_constant)


def _nesting(text: str) -> int:
    """An upper bound of the JSON nesting (brackets inside strings count too: only ever an overestimate)."""
    depth = deepest = 0
    for ch in text:
        if ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth -= 1
    return deepest
