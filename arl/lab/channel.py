"""The verdict channel, the host's side: answering verdicts, writing the files the agent reads, keeping the
control folder within its caps and moving what was handled out of the agent's reach (reading one: verdicts.py)."""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path
from typing import Any, TypedDict

from arl.lab.verdicts import SEQ, Rejected, read
from arl.util.fsutil import write_json

MAX_FILES, MAX_CONTROL_BYTES = 64, 4 * 1024 * 1024


class Ack(TypedDict, total=False):
    """The host's answer to a verdict (ack-<seq>.json; docs/protocol.md): how it was recorded, or why not."""

    seq: int | str  # the verdict's seq (its file's tag when it was rejected before it could be read)
    outcome: str | None  # keep, vetoed, discard (as its row says), or rejected (nothing recorded)
    reason: str
    experiment: int | None
    score: float | None
    verified_score: float | None
    best: float | None
    best_experiment: int | None  # with parallel agents: which experiment holds the best, and its notes
    best_notes: str


_HOST_FILES = ("expected.json", "prompt.md")


def tidy(control: Path, expected: int, archive_dir: Path) -> list[str]:
    """Before a decision: verdicts for any other seq are rejected and removed (one verdict per decision, so a
    pile written ahead cannot outrun the stop rule), answered acks move to the archive, and the agent's files
    beyond the folder's caps are removed. Returns what was removed, and says so."""
    removed = _cap(control, expected)  # first, so that no more than the cap are read and answered below
    try:
        names = sorted(os.listdir(control))
    except OSError:
        return removed
    for name in names:
        path = control / name
        if name.startswith("ack-") and name.endswith(".json"):
            tag = name[4:-5]
            if SEQ.fullmatch(tag) and int(tag) < expected - 1:
                _move_aside(path, archive_dir)  # read long ago: the agent only waits for the latest
            continue
        if not name.startswith("verdict-") or name == f"verdict-{expected}.json":
            continue
        v = read(path, expected)
        if isinstance(v, Rejected):
            answer(control, v.tag, {"outcome": "rejected", "reason": v.reason, "seq": v.tag})
        _remove(path)
        removed.append(name)
    if removed:
        shown = ", ".join(removed[:5]) + (f" and {len(removed) - 5} more" if len(removed) > 5 else "")
        print(f"arl: removed {len(removed)} files from the control folder: {shown}", flush=True)
    return removed


def _cap(control: Path, expected: int) -> list[str]:
    keep = {*_HOST_FILES, f"verdict-{expected}.json", f"ack-{expected - 1}.json"}
    sizes: list[tuple[int, str]] = []
    total = 0
    for name in os.listdir(control):
        try:
            st = os.lstat(control / name)
        except OSError:
            continue
        size = st.st_size if stat.S_ISREG(st.st_mode) else 4096
        total += size
        if name not in keep and not name.startswith("ack-"):
            sizes.append((size, name))
    removed: list[str] = []
    count = len(sizes) + len(keep)
    for size, name in sorted(sizes, reverse=True):  # the largest go first
        if count <= MAX_FILES and total <= MAX_CONTROL_BYTES:
            break
        _remove(control / name)
        removed.append(name)
        count -= 1
        total -= size
    return removed


def _remove(path: Path) -> None:
    try:
        if stat.S_ISDIR(os.lstat(path).st_mode):
            from arl.lab.treefs import wipe

            wipe(path)  # whatever the agent built in there: unreadable, deep, linked
            os.rmdir(path)
        else:
            os.unlink(path)
    except OSError:
        pass


def answer(control: Path, tag: str | int, ack: Ack) -> None:
    """Write ack-<tag>.json. A failure to answer is reported, never the end of the loop."""
    try:
        write_control(control / f"ack-{tag}.json", ack)
    except OSError as e:
        print(f"arl: could not write the ack ack-{tag}.json: {e.strerror}", flush=True)


def write_control(path: Path, obj: Any) -> None:
    """Write a JSON file into the agent's control folder, atomically. Whatever the agent put at that name (a
    directory, a symlink, a FIFO) is replaced, never followed or written through."""
    make_way(path)
    write_json(path, obj, fsync=False)


def make_way(path: Path) -> None:
    """A directory the agent put where the host writes a file is moved aside (a rename replaces anything else)."""
    try:
        if stat.S_ISDIR(os.lstat(path).st_mode):
            _move_aside(path, path.parent.parent / "verdicts")
    except OSError:
        pass


def archive(path: Path, archive_dir: Path) -> None:
    """Move a processed verdict (whatever it is: file, link, FIFO, directory) out of the agent's reach.

    An archived verdict is never overwritten: a second file of the same name is kept beside it."""
    _move_aside(path, archive_dir)


def _move_aside(path: Path, archive_dir: Path) -> None:
    try:
        archive_dir.mkdir(parents=True, exist_ok=True)
        target = archive_dir / path.name
        if os.path.lexists(target):
            target = archive_dir / f"{path.name}.{time.time_ns()}"
        os.rename(path, target)
    except OSError:
        import shutil

        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            try:
                os.unlink(path)
            except OSError as e:
                print(f"arl: could not move {path.name} out of the control folder: {e.strerror}", flush=True)
