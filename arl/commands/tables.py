"""Plain-text tables for people, in tabulate's "simple" layout, without tabulate: importing it costs more than
reading 10,000 results rows, and it guesses the type of every cell (over a second for such a history)."""

from __future__ import annotations

from collections.abc import Collection


def _after_point(cell: str) -> int:
    """Digits after the decimal point (or exponent) of a number, -1 for an integer or text."""
    try:
        float(cell)
    except ValueError:
        return -1
    if cell.lstrip("+-").isdigit():
        return -1
    pos = cell.rfind(".")
    pos = cell.lower().rfind("e") if pos < 0 else pos
    return len(cell) - pos - 1 if pos >= 0 else -1


def simple_table(table: list[list[str]], cols: list[str], numeric: Collection[str]) -> str:
    """The table with a header and a rule; the `numeric` columns right-aligned on the decimal point, the others
    left-aligned; two spaces between columns; in time linear in the rows."""
    out_cols = []
    for j, name in enumerate(cols):
        cells = [line[j] for line in table]
        width = len(name) + 2
        if name in numeric:
            points = [_after_point(c) for c in cells]
            most = max(points, default=-1)
            cells = [c + " " * (most - p) for c, p in zip(cells, points)]
            width = max([width, *map(len, cells)])
            out_cols.append([name.rjust(width), "-" * width, *(c.rjust(width) for c in cells)])
        else:
            cells = [c.strip() for c in cells]
            width = max([width, *map(len, cells)])
            out_cols.append([name.ljust(width), "-" * width, *(c.ljust(width) for c in cells)])
    return "\n".join("  ".join(line).rstrip() for line in zip(*out_cols))
