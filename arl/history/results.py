"""results.tsv: the append-only experiment history (its format: docs/protocol.md)."""

from __future__ import annotations

import csv
import io
import json
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from arl.config.config import LabConfig
from arl.errors import ArlError
from arl.history import results_fast
from arl.history.format import COLUMNS, OLD_COLUMNS, format_row, header_line

if TYPE_CHECKING:
    from arl.history.format import Row


OUTCOMES = ("baseline", "keep", "discard", "vetoed", "crash", "interrupted")
_FLOATS = ("score", "verified_score", "holdout_score", "best", "cost_usd")
_INTS = ("id", "run", "slot")


_ESCAPED = re.compile(r"\\(.)", re.S)
_UNESCAPED = {"t": "\t", "n": "\n", "r": "\r", "\\": "\\"}


def unescape(text: str) -> str:
    if "\\" not in text:  # most notes: nothing to undo
        return text
    return _ESCAPED.sub(lambda m: _UNESCAPED.get(m.group(1), m.group(0)), text)


def parse_row(raw: dict[str, str], where: str) -> Row:
    row: dict[str, Any] = {}
    for c in COLUMNS:
        v = raw.get(c)
        v = "" if v is None else v
        try:
            if c in _INTS:
                row[c] = int(v) if v != "" else None
            elif c in _FLOATS:
                row[c] = float(v) if v != "" else None
            elif c == "metrics":
                row[c] = json.loads(v) if v else {}
            elif c == "notes":
                row[c] = unescape(v)
            else:
                row[c] = v or None
        except ValueError:
            raise ArlError(f"{where}: column {c!r} has an unreadable value {v[:40]!r}")
    return row  # type: ignore[return-value]  # every column converted to its type above


class History(NamedTuple):  # no dataclass: `arl results` imports no dataclasses (see arl.config.config)
    """The parsed history of a lab, with the figures the loop needs."""

    rows: list[Row]

    @property
    def next_id(self) -> int:
        return max((r["id"] for r in self.rows if r["id"] is not None), default=-1) + 1

    def ids(self) -> set[int]:
        return {r["id"] for r in self.rows if r["id"] is not None}


def effective(row: Row) -> float | None:
    """The score that counts: the host's when it has one."""
    return row["verified_score"] if row.get("verified_score") is not None else row.get("score")


def since_baseline(rows: list[Row]) -> list[Row]:
    """The rows from the last baseline on: a baseline measures what the branch holds (a run re-measures it when the
    branch's pipeline is not the best experiment's tree), so earlier scores no longer say what a keep must beat."""
    for k in range(len(rows) - 1, -1, -1):
        if rows[k]["outcome"] == "baseline":
            return rows[k:]
    return rows


def best_of(cfg: LabConfig, rows: list[Row]) -> tuple[float | None, int | None]:
    """Best score among the last baseline and the experiments kept since, and its id."""
    best: float | None = None
    best_id: int | None = None
    for r in since_baseline(rows):
        if r["outcome"] in ("baseline", "keep"):
            s = effective(r)
            if s is not None and cfg.better(s, best):
                best, best_id = s, r["id"]
    return best, best_id


def plateau(cfg: LabConfig, rows: list[Row]) -> int:
    """Experiments in a row, most recent last, that did not beat the best before them."""
    best: float | None = None
    count = 0
    for r in since_baseline(rows):
        s = effective(r)
        improved = r["outcome"] in ("baseline", "keep") and s is not None and cfg.better(s, best)
        if improved:
            best, count = s, 0
        elif r["outcome"] != "baseline":
            count += 1
    return count


# Parsed histories by path: a long-running loop re-reads results.tsv as it grows, and it only ever grows at the
# end, so the rows of an unchanged prefix are reused and only the new lines are parsed.
_parsed: dict[str, tuple[str, list[Row]]] = {}
_views: dict[str, tuple[list[Row], list[str]]] = {}


def _read_text(path: Path) -> tuple[str, bytes]:
    try:
        data = path.read_bytes()
        text = data.decode("utf-8")
    except (OSError, UnicodeDecodeError) as e:
        if isinstance(e, UnicodeDecodeError):  # the error message read_text gives, as it always was
            path.read_text(encoding="utf-8")
        raise ArlError(f"cannot read {path}: {e}")
    if "\r" in text:  # what read_text's universal newlines did
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text, data


def read(path: Path) -> History:
    if not path.exists():
        return History([])
    text, data = _read_text(path)
    if not text.strip():
        return History([])
    key = str(path)
    seen, known = _parsed.get(key, ("", []))
    if seen and text.startswith(seen):  # `seen` ends with a newline: the new text starts on a line of its own
        rows = known + _parse(path, text, text[len(seen) :], seen.count("\n") + 1)
    else:
        reader = csv.reader(io.StringIO(text), delimiter="\t")
        header = next(reader)
        if header[:1] == ["experiment_id"]:  # perhaps a history begun with autoresearch-lab: converted once
            from arl.history.results_migrate import HEADER, convert

            if header == HEADER:
                text, header = convert(path, text, data), COLUMNS
        if header not in (COLUMNS, OLD_COLUMNS):
            raise ArlError(f"{path}: header is {' '.join(header)!r}; expected the columns {' '.join(COLUMNS)!r}")
        rows = _parse(path, text, text[text.index("\n") + 1 :] if "\n" in text else "", 2)
    if text.endswith("\n"):  # no torn line at the end: safe to build on
        _parsed[key] = (text, rows)
    return History(list(rows))


TAIL_BLOCK = 1 << 16


def read_last(path: Path, last: int | None) -> list[Row]:
    """The last `last` rows (every row for None). results.tsv only grows at the end, so for a few rows only its
    header and its end are read; a file this cannot read so (another header, a line that is not arl's own, a row
    from before the slot column) is read whole, with read()'s errors."""
    if last is None or not path.is_file():
        return read(path).rows if last is None else []
    with open(path, "rb") as f:
        head = f.readline()
        size = f.seek(0, os.SEEK_END)
        start = len(head)
        pos, tail = size, b""
        while pos > start and tail.count(b"\n") <= last:  # one line more than asked: the first may be cut
            step = min(TAIL_BLOCK, pos - start)
            pos -= step
            f.seek(pos)
            tail = f.read(step) + tail
    if head != header_line().encode() or b"\r" in tail or not tail.endswith(b"\n"):
        return read(path).rows[-last:]
    lines = tail.decode("utf-8", "replace").split("\n")[:-1]
    if pos > start:  # the first line may have begun before the part read
        lines = lines[1:]
    wanted = "\n".join(lines[-last:]) + "\n"
    rows = results_fast.by_position(wanted, unescape) if "\ufffd" not in wanted else None
    return rows if rows is not None and len(rows) == min(last, len(lines)) else read(path).rows[-last:]


def _parse(path: Path, text: str, body: str, first: int) -> list[Row]:
    """The rows of `body`, the part of `text` that starts at line `first`."""
    fast = results_fast.by_position(body, unescape)
    return fast if fast is not None else _parse_precisely(path, text, body, first)


def _parse_precisely(path: Path, text: str, body: str, first: int) -> list[Row]:
    rows = []
    for n, cells in enumerate(csv.reader(io.StringIO(body), delimiter="\t"), start=first):
        if not cells:
            continue
        if len(cells) == len(OLD_COLUMNS):
            cells = [*cells, ""]
        if len(cells) != len(COLUMNS):
            # A torn last line (a crash mid-append) is ignored; anything else is an error.
            if n == text.count("\n") + 1 and not text.endswith("\n"):
                break
            raise ArlError(f"{path}: line {n} has {len(cells)} columns, expected {len(COLUMNS)}")
        rows.append(parse_row(dict(zip(COLUMNS, cells)), f"{path}: line {n}"))
    return rows


def view_text(path: Path) -> str:
    """The history as the agent may see it: holdout scores blanked. Only rows not formatted before are."""
    rows = read(path).rows
    old_rows, old_lines = _views.get(str(path), ([], []))
    same = 0
    for a, b in zip(old_rows, rows):
        if a is not b:
            break
        same += 1
    lines = old_lines[:same] + [format_row({**r, "holdout_score": None}) for r in rows[same:]]
    _views[str(path)] = (rows, lines)
    return header_line() + "".join(lines)


def ensure_file(path: Path) -> None:
    """The file exists with today's header, before anything is appended to it: an empty file (autoresearch-lab's
    `arl init` makes one) is a new history; one from before the slot column gets it (every old row: slot 0), and
    one of autoresearch-lab's is converted, each rewritten once, atomically."""
    from arl.history.results_migrate import HEADER, convert

    if not path.exists() or (path.stat().st_size < 64 and not path.read_bytes().strip()):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(header_line())
        return
    with open(path, "rb") as f:
        head = f.readline()
    cells = head.rstrip(b"\r\n").decode("utf-8", "replace").split("\t")
    if cells == HEADER:
        data = path.read_bytes()
        convert(path, data.decode("utf-8", "replace").replace("\r\n", "\n"), data, write=True)
    elif cells == OLD_COLUMNS:
        rows = read(path).rows
        tmp = path.with_name(f".{path.name}.slot-column.tmp")
        tmp.write_text(header_line() + "".join(format_row({**r, "slot": r.get("slot") or 0}) for r in rows), "utf-8")
        os.replace(tmp, path)


def append(path: Path, row: Row) -> None:
    ensure_file(path)
    with open(path, "rb+") as f:
        f.seek(0, os.SEEK_END)
        if f.tell() > 0:
            f.seek(-1, os.SEEK_END)
            if f.read(1) != b"\n":  # a torn line from a crash: cut it, it was never a row
                _truncate_torn(f)
        f.seek(0, os.SEEK_END)
        f.write(format_row(row).encode("utf-8"))
        f.flush()
        os.fsync(f.fileno())
    from arl.util import sh

    sh.note(f"appended experiment {row['id']} ({row['outcome']}) to {path.name}")


def _truncate_torn(f: Any) -> None:
    f.seek(0)
    data = f.read()
    cut = data.rfind(b"\n") + 1
    f.truncate(cut)
