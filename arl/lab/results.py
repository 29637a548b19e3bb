"""results.tsv: the append-only experiment history (its format: docs/protocol.md)."""

from __future__ import annotations

import csv
import io
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from arl.errors import ArlError
from arl.lab import results_cache, results_fast
from arl.lab.config import LabConfig

TYPE_CHECKING = False  # typing itself costs milliseconds to import: only the type checker reads these
if TYPE_CHECKING:
    from typing import Any

    from arl.lab.runstate import Row


COLUMNS = [
    "id",
    "run",
    "time",
    "outcome",
    "score",
    "verified_score",
    "holdout_score",
    "best",
    "cost_usd",
    "commit",
    "agent",
    "notes",
    "metrics",
    "slot",  # which parallel agent (0 to agents-1); files written before slots existed lack the column
]
OLD_COLUMNS = COLUMNS[:-1]
OUTCOMES = ("baseline", "keep", "discard", "vetoed", "crash", "interrupted")
_FLOATS = ("score", "verified_score", "holdout_score", "best", "cost_usd")
_INTS = ("id", "run", "slot")


def escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


_ESCAPED = re.compile(r"\\(.)", re.S)
_UNESCAPED = {"t": "\t", "n": "\n", "r": "\r", "\\": "\\"}


def unescape(text: str) -> str:
    if "\\" not in text:  # most notes: nothing to undo
        return text
    return _ESCAPED.sub(lambda m: _UNESCAPED.get(m.group(1), m.group(0)), text)


def header_line() -> str:
    return "\t".join(COLUMNS) + "\n"


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)
    return str(value)


def format_row(row: Row) -> str:
    cells = [_cell(row.get(c)) for c in COLUMNS]
    cells[COLUMNS.index("notes")] = escape(str(row.get("notes") or ""))
    cells[COLUMNS.index("metrics")] = json.dumps(row.get("metrics") or {}, sort_keys=True, default=str)
    buf = io.StringIO()
    csv.writer(buf, delimiter="\t", lineterminator="\n").writerow(cells)
    return buf.getvalue()


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


@dataclass
class History:
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


# Parsed histories by path: a long-running loop re-reads results.tsv several times per verdict, and it only ever
# grows at the end, so the rows of an unchanged prefix are reused and only the new lines are parsed.
_parsed: dict[str, tuple[str, list[Row]]] = {}
_views: dict[str, tuple[list[Row], list[str]]] = {}


def read(path: Path) -> History:
    if not path.exists():
        return History([])
    try:
        data = path.read_bytes()
        text = data.decode("utf-8")
    except (OSError, UnicodeDecodeError) as e:
        if isinstance(e, UnicodeDecodeError):  # the error message read_text gives, as it always was
            path.read_text(encoding="utf-8")
        raise ArlError(f"cannot read {path}: {e}")
    if "\r" in text:  # what read_text's universal newlines did
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    if not text.strip():
        return History([])
    key = str(path)
    seen, known = _parsed.get(key, ("", []))
    cache = None if seen else results_cache.cache_file(path)
    entry = results_cache.load(cache, data, header_line()) if cache is not None else None
    if entry is not None:  # this process's first read: the rows parsed by an earlier one may still hold
        try:
            seen, known = text[: entry.nchars], entry.rows()
        except (ValueError, EOFError, TypeError):  # a damaged entry: parsed again, and rewritten
            entry = None
    if seen and text.startswith(seen):  # `seen` ends with a newline: the new text starts on a line of its own
        rows = known + _parse(path, text, text[len(seen) :], seen.count("\n") + 1)
    else:
        reader = csv.reader(io.StringIO(text), delimiter="\t")
        header = next(reader)
        if header[:1] == ["experiment_id"]:  # perhaps a history begun with autoresearch-lab: converted once
            from arl.lab.results_migrate import HEADER, convert

            if header == HEADER:
                text = convert(path, text, data)
                data, cache, header = text.encode("utf-8"), None, COLUMNS
        if header not in (COLUMNS, OLD_COLUMNS):
            raise ArlError(f"{path}: header is {' '.join(header)!r}; expected the columns {' '.join(COLUMNS)!r}")
        rows = _parse(path, text, text[text.index("\n") + 1 :] if "\n" in text else "", 2)
    if text.endswith("\n"):  # no torn line at the end: safe to build on
        _parsed[key] = (text, rows)
        if cache is not None and len(rows) != len(known):
            results_cache.store(cache, data, header_line(), len(text), rows, entry)
    return History(list(rows))


def read_last(path: Path, last: int | None, texts: bool = False) -> tuple[list[Row], list[str] | None]:
    """The last `last` rows (every row for None) and, when asked for and the parsed-history cache holds them, each
    as `arl results --format json` prints it. With a cache entry that matches the whole file (its bytes, checked),
    only the blocks holding those rows are loaded; otherwise the file is read as read() reads it, errors included."""
    cache = results_cache.cache_file(path) if str(path) not in _parsed and path.is_file() else None
    if cache is not None:
        try:
            data = path.read_bytes()
        except OSError:
            data = b""
        entry = results_cache.load(cache, data, header_line()) if data else None
        if entry is not None and entry.nbytes == len(data):
            try:
                return entry.rows(last), (entry.texts(last) if texts else None)
            except (ValueError, EOFError, TypeError):  # a damaged block: read the file instead
                pass
    rows = read(path).rows
    return (rows[-last:] if last else rows), None


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


def append(path: Path, row: Row) -> None:
    from arl.lab.results_migrate import ensure_file

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
