"""results.tsv's format: its columns, a row as arl reads it (typed), and a row as one line of the file (the
format in words: docs/protocol.md)."""

from __future__ import annotations

import csv
import io
import json
from typing import Any, TypedDict


class Row(TypedDict):
    """One experiment of results.tsv, parsed (an empty cell is None)."""

    id: int | None
    run: int | None
    time: str | None
    outcome: str | None
    score: float | None  # the agent's claim
    verified_score: float | None  # the host's measurement
    holdout_score: float | None
    best: float | None  # the best score when it was recorded
    cost_usd: float | None
    commit: str | None  # the experiment's snapshot commit (a keep's is on the branch)
    agent: str | None
    notes: str
    metrics: dict[str, Any]
    slot: int | None


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


def escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


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
