"""The host's side of the verdict protocol: reading, validating and answering the agent's proposals."""

from __future__ import annotations

import json
import math
import os
import re
import stat
import time
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


HOST_FILES = ("expected.json", "prompt.md")
_ACK = re.compile(r"ack-[A-Za-z0-9_.-]{1,40}\.json")
# The temp file of an atomic write (fsutil.atomic_write: "." + name + "." + mkstemp's 8 characters + ".tmp").
_TEMP = re.compile(
    r"\.(verdict-[A-Za-z0-9_.-]{1,40}\.json|ack-[A-Za-z0-9_.-]{1,40}\.json|expected\.json|prompt\.md)\.[a-z0-9_]{8}\.tmp"
)
MAX_FILES = 64


def protocol_name(name: str) -> bool:
    """Is `name` one the protocol defines for the control folder (docs/protocol.md)? Anything else is removed."""
    return name in HOST_FILES or is_verdict(name) or bool(_ACK.fullmatch(name) or _TEMP.fullmatch(name))


def is_verdict(name: str) -> bool:
    """A verdict file, well named or not: each one is answered (a bad name as ack-invalid.json), none ignored."""
    return name.startswith("verdict-") and name.endswith(".json")


FULL_SCAN = 0.25  # seconds between listings of a control folder; between them, only the expected verdict is looked up
_next_scan: dict[Path, float] = {}


def pending(control: Path) -> list[Path]:
    """Verdict files waiting, oldest sequence first (temp files of an unfinished write are not verdicts). The folder
    is listed (and swept) at most every FULL_SCAN seconds; in between, one lookup of the verdict expected.json names:
    a folder an agent flooded stays large on disk after the sweep, and listing it on every poll would cost much."""
    now = time.monotonic()
    if now >= _next_scan.get(control, 0.0):
        _next_scan[control] = now + FULL_SCAN
        return sweep(control)
    try:
        path = control / f"verdict-{int(json.loads(_small(control / 'expected.json'))['seq'])}.json"
    except (OSError, ValueError, KeyError, TypeError, OverflowError):
        return []
    return [path] if os.path.lexists(path) else []


def sweep(control: Path) -> list[Path]:
    """List the folder once: every name the protocol does not define is removed on the way (a flood of junk is
    drained once), and past the file cap, acks the agent no longer waits for and temp files go too. Returns the
    verdicts, oldest sequence first."""
    found: list[str] = []
    kept = 0
    try:
        with os.scandir(control) as entries:
            for entry in entries:
                name = entry.name
                if is_verdict(name):
                    found.append(name)
                elif protocol_name(name):
                    kept += 1
                elif entry.is_dir(follow_symlinks=False):
                    remove(control / name)
                else:
                    _unlink(control / name)  # the type from the listing: no lstat per file of a flood
    except OSError:
        return []
    if kept + len(found) > MAX_FILES:
        _shed(control)
    return [control / n for n in sorted(found, key=_order)]


def _shed(control: Path) -> None:
    """Over the cap without any junk: acks the agent no longer waits for (all but the last two the host wrote, as
    expected.json says) and temp files are removed. Verdicts stay for the decision, which answers or removes them."""
    try:
        expected = int(json.loads(_small(control / "expected.json"))["seq"])
        current = {f"ack-{expected - 1}.json", f"ack-{expected}.json"}
    except (OSError, ValueError, KeyError, TypeError, OverflowError):
        current = set()
    for name in os.listdir(control):
        if (_ACK.fullmatch(name) and name not in current) or _TEMP.fullmatch(name):
            remove(control / name)


def _small(path: Path) -> bytes:
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            raise ValueError("not a regular file")
        return f.read(4096)


def _unlink(path: Path) -> None:
    try:
        os.unlink(path)
    except IsADirectoryError:  # swapped for a folder since the listing
        remove(path)
    except OSError:
        pass


def remove(path: Path) -> None:
    """Remove whatever the agent put at `path` (a file, a link, a FIFO, a folder of anything), never following a
    link: nothing of it is kept."""
    try:
        if stat.S_ISDIR(os.lstat(path).st_mode):
            from arl.git.treefs import wipe

            wipe(path)  # whatever the agent built in there: unreadable, deep, linked
            os.rmdir(path)
        else:
            os.unlink(path)
    except OSError:
        pass


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
