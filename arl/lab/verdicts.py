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

MAX_BYTES = 256 * 1024
_NAME = re.compile(r"^verdict-(.+)\.json$")
_TAG = re.compile(r"[A-Za-z0-9_.-]{1,40}")
SEQ = re.compile(r"0|[1-9][0-9]*")  # ASCII digits, no leading zero: one file name per seq


@dataclass
class Verdict:
    seq: int
    action: str
    notes: str
    score: float | None
    metrics: dict[str, Any] = field(default_factory=dict)
    tree: str | None = None  # the workspace's tree id as the agent's `arl eval` computed it


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
    # Only ASCII digits are a seq: str.isdigit() also accepts '²', which int() refuses.
    return (int(tag), "") if SEQ.fullmatch(tag) else (1 << 62, tag)


def tag_of(name: str) -> str:
    """The part of a verdict file's name that names its ack (ack-<tag>.json), or "invalid"."""
    m = _NAME.match(name)
    return m.group(1) if m and _TAG.fullmatch(m.group(1)) else "invalid"


def read(path: Path, expected_seq: int) -> Verdict | Rejected:
    """Read and validate one verdict file. Never raises for anything the agent can put in the control folder."""
    tag = tag_of(path.name)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return Rejected(tag, "the verdict file disappeared before the host read it")
    except OSError as e:
        return Rejected(tag, f"the verdict file cannot be read ({e.strerror})")
    if stat.S_ISLNK(st.st_mode):
        return Rejected(tag, "the verdict is a symlink; write a regular file (use `arl verdict`)")
    if not stat.S_ISREG(st.st_mode):
        return Rejected(tag, "the verdict is not a regular file (use `arl verdict`)")
    if st.st_size > MAX_BYTES:
        return Rejected(tag, f"the verdict is {st.st_size} bytes; the limit is {MAX_BYTES}")
    if not SEQ.fullmatch(tag):
        return Rejected(tag, f"the verdict file name must be verdict-<seq>.json with seq {expected_seq}")
    try:
        # O_NONBLOCK: a FIFO swapped in after the lstat must not block the host; fstat checks what was opened.
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as e:
        return Rejected(tag, f"the verdict file cannot be read ({e.strerror}); write a regular file")
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            return Rejected(tag, "the verdict is not a regular file (use `arl verdict`)")
        raw = f.read(MAX_BYTES + 1)
    if len(raw) > MAX_BYTES:
        return Rejected(tag, f"the verdict is more than {MAX_BYTES} bytes; the limit is {MAX_BYTES}")
    try:
        obj = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        return Rejected(tag, "the verdict is not UTF-8 text")
    except json.JSONDecodeError as e:
        return Rejected(tag, f"the verdict is not valid JSON ({e.msg} at line {e.lineno})")
    except (RecursionError, ValueError):
        return Rejected(tag, "the verdict is not usable JSON (nested too deeply or out of range)")
    return _validate(obj, int(tag), expected_seq, tag)


def _bad_text(text: str) -> str | None:
    """Why a string cannot go into a commit message or results.tsv, or None."""
    if "\x00" in text:
        return "contains a NUL character"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "is not valid Unicode (a lone surrogate)"
    return None


def _bad_metrics(value: Any, depth: int = 0) -> str | None:
    """What an honest `arl eval` never sends (it writes non-finite numbers as strings): NaN or Infinity, or
    nesting deep enough to trouble the JSON encoder when the row is written."""
    if depth > 32:
        return "are nested too deeply"
    if isinstance(value, float) and not math.isfinite(value):
        return "must not hold NaN or Infinity (write them as strings)"
    children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
    for child in children:
        why = _bad_metrics(child, depth + 1)
        if why:
            return why
    return None


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    return {str: "a string", list: "an array", dict: "an object"}.get(type(value), type(value).__name__)


def _finite(value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an integer too large for a float
        return False


def _validate(obj: Any, file_seq: int, expected: int, tag: str) -> Verdict | Rejected:
    if not isinstance(obj, dict):
        return Rejected(tag, f"the verdict must be a JSON object, not {_json_type(obj)}")
    missing = [k for k in ("seq", "action") if k not in obj]
    if missing:
        return Rejected(tag, f"the verdict lacks {', '.join(missing)}")
    seq = obj["seq"]
    if isinstance(seq, bool) or not isinstance(seq, int):
        return Rejected(tag, "seq must be an integer")
    if abs(seq) > 1 << 62:
        return Rejected(tag, f"seq is out of range; the next seq is {expected}")
    if seq != file_seq:
        return Rejected(tag, f"seq {seq} does not match the file name (verdict-{file_seq}.json)")
    if seq < expected:
        return Rejected(tag, f"seq {seq} was already answered (replayed); the next seq is {expected}")
    if seq > expected:
        return Rejected(tag, f"seq {seq} skips ahead; the next seq is {expected}")
    action = obj["action"]
    if action not in ("keep", "discard"):
        shown = repr(action[:40]) if isinstance(action, str) else _json_type(action)
        return Rejected(tag, f'action must be "keep" or "discard", not {shown}')
    notes = obj.get("notes", "")
    if notes is None:
        notes = ""
    if not isinstance(notes, str):
        return Rejected(tag, "notes must be a string")
    notes = notes[:4000]
    why = _bad_text(notes)
    if why:
        return Rejected(tag, f"notes {why}")
    score = obj.get("score")
    if score is not None and not _finite(score):
        return Rejected(tag, "score must be a finite number or null")
    metrics = obj.get("metrics", {})
    if metrics is None:
        metrics = {}
    if not isinstance(metrics, dict):
        return Rejected(tag, "metrics must be a JSON object")
    why = _bad_metrics(metrics)
    if why:
        return Rejected(tag, f"metrics {why}")
    h = obj.get("tree", obj.get("pipeline_hash"))  # pipeline_hash: the name before trees were git's
    if h is not None and (not isinstance(h, str) or _bad_text(h)):
        return Rejected(tag, "tree must be a string")
    return Verdict(seq, action, notes, float(score) if score is not None else None, metrics, h)
