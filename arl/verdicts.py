"""The host's side of the verdict protocol: reading, validating and answering the agent's proposals."""

from __future__ import annotations

import json
import math
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .fsutil import write_json

MAX_BYTES = 256 * 1024
_NAME = re.compile(r"^verdict-(.+)\.json$")


@dataclass
class Verdict:
    seq: int
    action: str
    notes: str
    score: float | None
    metrics: dict[str, Any] = field(default_factory=dict)
    pipeline_hash: str | None = None


@dataclass
class Rejected:
    tag: str  # the name part used for the ack file
    reason: str


def pending(control: Path) -> list[Path]:
    """Verdict files waiting, oldest sequence first (temp files of an unfinished write are not verdicts)."""
    try:
        names = os.listdir(control)
    except FileNotFoundError:
        return []
    found = [n for n in names if n.startswith("verdict-") and n.endswith(".json")]
    return [control / n for n in sorted(found, key=_order)]


def _order(name: str) -> tuple[int, str]:
    m = _NAME.match(name)
    tag = m.group(1) if m else name
    return (int(tag), "") if tag.isdigit() else (1 << 62, tag)


def read(path: Path, expected_seq: int) -> Verdict | Rejected:
    m = _NAME.match(path.name)
    tag = m.group(1) if m else path.name
    if not re.fullmatch(r"[A-Za-z0-9_.-]{1,40}", tag):
        tag = "invalid"
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return Rejected(tag, "the verdict file disappeared before the host read it")
    if stat.S_ISLNK(st.st_mode):
        return Rejected(tag, "the verdict is a symlink; write a regular file (use `arl verdict`)")
    if not stat.S_ISREG(st.st_mode):
        return Rejected(tag, "the verdict is not a regular file (use `arl verdict`)")
    if st.st_size > MAX_BYTES:
        return Rejected(tag, f"the verdict is {st.st_size} bytes; the limit is {MAX_BYTES}")
    if not tag.isdigit():
        return Rejected(tag, f"the verdict file name must be verdict-<seq>.json with seq {expected_seq}")
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    with os.fdopen(fd, "rb") as f:
        raw = f.read(MAX_BYTES + 1)
    try:
        obj = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        return Rejected(tag, "the verdict is not UTF-8 text")
    except json.JSONDecodeError as e:
        return Rejected(tag, f"the verdict is not valid JSON ({e.msg} at line {e.lineno})")
    except (RecursionError, ValueError):
        return Rejected(tag, "the verdict is not usable JSON (nested too deeply or out of range)")
    return _validate(obj, int(tag), expected_seq, tag)


def _validate(obj: Any, file_seq: int, expected: int, tag: str) -> Verdict | Rejected:
    if not isinstance(obj, dict):
        return Rejected(tag, f"the verdict must be a JSON object, not {type(obj).__name__}")
    missing = [k for k in ("seq", "action") if k not in obj]
    if missing:
        return Rejected(tag, f"the verdict lacks {', '.join(missing)}")
    seq = obj["seq"]
    if isinstance(seq, bool) or not isinstance(seq, int):
        return Rejected(tag, "seq must be an integer")
    if seq != file_seq:
        return Rejected(tag, f"seq {seq} does not match the file name (verdict-{file_seq}.json)")
    if seq < expected:
        return Rejected(tag, f"seq {seq} was already answered (replayed); the next seq is {expected}")
    if seq > expected:
        return Rejected(tag, f"seq {seq} skips ahead; the next seq is {expected}")
    action = obj["action"]
    if action not in ("keep", "discard"):
        return Rejected(tag, f'action must be "keep" or "discard", not {str(action)[:40]!r}')
    notes = obj.get("notes", "")
    if not isinstance(notes, str):
        return Rejected(tag, "notes must be a string")
    score = obj.get("score")
    if score is not None and (
        isinstance(score, bool) or not isinstance(score, (int, float)) or not math.isfinite(score)
    ):
        return Rejected(tag, "score must be a finite number or null")
    metrics = obj.get("metrics", {})
    if not isinstance(metrics, dict):
        return Rejected(tag, "metrics must be a JSON object")
    h = obj.get("pipeline_hash")
    if h is not None and not isinstance(h, str):
        return Rejected(tag, "pipeline_hash must be a string")
    return Verdict(seq, action, notes[:4000], None if score is None else float(score), metrics, h)


def answer(control: Path, tag: str | int, ack: dict[str, Any]) -> None:
    write_json(control / f"ack-{tag}.json", ack, fsync=False)


def archive(path: Path, archive_dir: Path) -> None:
    """Move a processed verdict out of the agent's reach; a directory in its place is simply removed."""
    archive_dir.mkdir(parents=True, exist_ok=True)
    try:
        if path.is_dir() and not path.is_symlink():
            import shutil

            shutil.rmtree(path, ignore_errors=True)
        else:
            os.replace(path, archive_dir / path.name)
    except OSError:
        pass
