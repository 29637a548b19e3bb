"""results.tsv read by position: the fast path of arl.history.results.read for the lines arl itself writes.
Anything it does not recognise as such is left to the csv parser (arl.history.results), which gives the same rows
and the errors."""

from __future__ import annotations

import gc
import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from arl.history.format import Row


WIDTH = 14  # the columns of arl.history.format.COLUMNS, in that order


def by_position(body: str, unescape: Callable[[str], str]) -> list[Row] | None:
    """The rows of a well-formed body, read by position: a line is 14 tab-separated cells (notes are escaped and
    metrics are JSON, so no cell holds a tab or a newline). None at the first line that is anything else (a torn
    line, a cell csv would read differently, a value that does not convert): the precise parser then reads the
    whole body, with the errors it has always given."""
    if "\r" in body:
        return None
    # Ten thousand new dicts would start the cyclic garbage collector some 300 times, to find no cycle in them.
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _by_position(body, unescape)
    finally:
        if collecting:
            gc.enable()


def _by_position(body: str, unescape: Callable[[str], str]) -> list[Row] | None:
    rows: list[Row] = []
    add = rows.append
    try:
        for line in body.split("\n"):
            if not line:
                continue
            cells = line.split("\t")
            if len(cells) != WIDTH:
                if len(cells) != WIDTH - 1:  # a row from before the slot column
                    return None
                cells.append("")
            if '"' in line:  # always so for metrics (JSON), seldom anywhere else
                cells = [_unquote(c) if '"' in c else c for c in cells]
            i, run, time, outcome, score, verified, holdout, best, cost, commit, agent, notes, metrics, slot = cells
            add(
                {
                    "id": int(i) if i else None,
                    "run": int(run) if run else None,
                    "time": time or None,
                    "outcome": outcome or None,
                    "score": float(score) if score else None,
                    "verified_score": float(verified) if verified else None,
                    "holdout_score": float(holdout) if holdout else None,
                    "best": float(best) if best else None,
                    "cost_usd": float(cost) if cost else None,
                    "commit": commit or None,
                    "agent": agent or None,
                    "notes": unescape(notes),
                    "metrics": _json_cell(metrics) if metrics else {},
                    "slot": int(slot) if slot else None,
                }
            )
    except (ValueError, StopIteration):
        return None
    return rows


_scan: Any = json.JSONDecoder().__dict__["scan_once"]  # the C scanner json.loads itself calls


def _json_cell(cell: str) -> Any:
    """json.loads for a cell as arl writes it, without its per-call overhead (a third of the read time): anything
    but exactly one JSON value, spaces around it included, raises and leaves the cell to the precise parser."""
    value, end = _scan(cell, 0)
    if end != len(cell):
        raise ValueError(cell)
    return value


def _unquote(cell: str) -> str:
    """A cell as the csv module reads it, for the one shape its writer makes: the whole cell in quotes, inner quotes
    doubled. ValueError for any other cell with a quote that is not plain text."""
    if not cell.startswith('"'):
        return cell  # a quote inside an unquoted cell is an ordinary character
    inner = cell[1:-1]
    if len(cell) < 2 or not cell.endswith('"') or '"' in inner.replace('""', ""):
        raise ValueError(cell)
    return inner.replace('""', '"')
