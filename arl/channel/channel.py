"""The verdict channel, the host's side: answering verdicts, writing the files the agent reads, keeping the
control folder to the names the protocol defines and within its caps, and keeping only regular files the agent
wrote (reading one: verdicts.py)."""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path
from typing import Any, TypedDict

from arl.channel.verdicts import HOST_FILES, MAX_BYTES, MAX_FILES, SEQ, Rejected, read, remove, sweep
from arl.util import sh
from arl.util.fsutil import write_json

MAX_CONTROL_BYTES = 4 * 1024 * 1024


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


def tidy(control: Path, expected: int, archive_dir: Path) -> list[str]:
    """Before a decision: names the protocol does not define are removed (sweep), acks of answered seqs are archived
    (one per seq) and other acks the agent does not wait for removed; verdicts for any other seq are rejected and
    removed (one verdict per decision, so a pile written ahead cannot outrun the stop rule); the rest is held to the
    folder's caps. Returns what was removed, and says so."""
    sweep(control)
    removed = _cap(control, expected)  # first, so that no more than the cap are read and answered below
    try:
        names = sorted(os.listdir(control))
    except OSError:
        return removed
    current = {f"ack-{expected - 1}.json", f"ack-{expected}.json"}
    for name in names:
        path = control / name
        if name.startswith("ack-"):
            tag = name[4:-5] if name.endswith(".json") else ""
            if SEQ.fullmatch(tag) and int(tag) < expected - 1:
                archive(path, archive_dir, first_only=True)  # read long ago: kept as the record of its answer
            elif name not in current:
                remove(path)  # not an answer the agent waits for (or one it wrote itself)
            continue
        if not name.startswith("verdict-") or name == f"verdict-{expected}.json":
            continue
        v = read(path, expected)
        if isinstance(v, Rejected):
            answer(control, v.tag, {"outcome": "rejected", "reason": v.reason, "seq": v.tag})
        remove(path)
        removed.append(name)
    if removed:
        shown = ", ".join(removed[:5]) + (f" and {len(removed) - 5} more" if len(removed) > 5 else "")
        print(f"arl: removed {len(removed)} files from the control folder: {shown}", flush=True)
    return removed


def _cap(control: Path, expected: int) -> list[str]:
    keep = {*HOST_FILES, f"verdict-{expected}.json", f"ack-{expected - 1}.json", f"ack-{expected}.json"}
    sizes: list[tuple[int, str]] = []
    total = count = 0
    for name in os.listdir(control):
        try:
            st = os.lstat(control / name)
        except OSError:
            continue
        size = st.st_size if stat.S_ISREG(st.st_mode) else 4096
        total += size
        count += 1
        if name not in keep:
            sizes.append((size, name))
    removed: list[str] = []
    for size, name in sorted(sizes, reverse=True):  # the largest go first
        if count <= MAX_FILES and total <= MAX_CONTROL_BYTES:
            break
        remove(control / name)
        removed.append(name)
        count -= 1
        total -= size
    return removed


def answer(control: Path, tag: str | int, ack: Ack) -> None:
    """Write ack-<tag>.json. A failure to answer is reported, never the end of the loop."""
    try:
        write_control(control / f"ack-{tag}.json", ack)
        sh.note(f"wrote {control / f'ack-{tag}.json'} ({ack.get('outcome')})")
    except OSError as e:
        print(f"arl: could not write the ack ack-{tag}.json: {e.strerror}", flush=True)


def write_control(path: Path, obj: Any) -> None:
    """Write a JSON file into the agent's control folder, atomically. Whatever the agent put at that name (a
    directory, a symlink, a FIFO) is replaced, never followed or written through."""
    make_way(path)
    write_json(path, obj, fsync=False)


def make_way(path: Path) -> None:
    """A directory the agent put where the host writes a file is removed (a rename replaces anything else)."""
    try:
        if stat.S_ISDIR(os.lstat(path).st_mode):
            remove(path)
    except OSError:
        pass


def archive(path: Path, archive_dir: Path, first_only: bool = False) -> None:
    """Move a processed verdict (or an old ack) out of the agent's reach. Only a regular file of one link and at most
    the size of a verdict is kept, and then as a private file (0600: no setuid, setgid or sticky bit); anything else
    (a folder, a link, a FIFO, a file linked from the workspace, a huge file) is removed, never followed. An archived
    file is never overwritten: a second one of the same name is kept beside it, or with `first_only` removed (one
    ack per seq: the archive grows with the experiments, not with what the agent writes)."""
    try:
        st = os.lstat(path)
    except OSError:
        return
    target = archive_dir / path.name
    if (
        not stat.S_ISREG(st.st_mode)
        or st.st_nlink != 1
        or st.st_size > MAX_BYTES
        or (first_only and os.path.lexists(target))
    ):
        remove(path)
        return
    try:
        archive_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        if os.path.lexists(target):
            target = archive_dir / f"{path.name}.{time.time_ns()}"
        os.rename(path, target)
    except OSError as e:
        print(f"arl: could not move {path.name} out of the control folder: {e.strerror}", flush=True)
        remove(path)
        return
    after = os.lstat(target)
    if stat.S_ISREG(after.st_mode) and after.st_nlink == 1:
        os.chmod(target, 0o600, follow_symlinks=False)
    else:  # swapped between the look and the move
        remove(target)
