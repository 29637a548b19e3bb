"""Plain-text tables for people, in tabulate's "simple" layout, without tabulate: importing it costs more than
reading 10,000 results rows, and it guesses the type of every cell (over a second for such a history)."""

from __future__ import annotations

from collections.abc import Collection


def _after_point(cell: str) -> int:
    """Digits after the decimal point (or exponent) of a number, -1 for an integer or text."""
    if not cell:
        return -1
    digits = cell.lstrip("+-")
    if digits.isdigit():  # an integer: nearly every id, and no float() needed to tell
        return -1
    pos = digits.find(".")
    if pos > 0 and digits[:pos].isdecimal() and digits[pos + 1 :].isdecimal():  # a plain decimal, as most scores are
        return len(digits) - pos - 1
    try:
        float(cell)
    except ValueError:
        return -1
    pos = cell.rfind(".")
    pos = cell.lower().rfind("e") if pos < 0 else pos
    return len(cell) - pos - 1 if pos >= 0 else -1


def simple_table(table: list[list[str]], cols: list[str], numeric: Collection[str]) -> str:
    """The table (a list of rows) with a header and a rule: see column_table."""
    return column_table([list(c) for c in zip(*table)] if table else [[] for _ in cols], cols, numeric)


def column_table(columns: list[list[str]], cols: list[str], numeric: Collection[str]) -> str:
    """The table (a list of columns, each its cells) with a header and a rule; the `numeric` columns right-aligned
    on the decimal point, the others left-aligned; two spaces between columns; in time linear in the rows."""
    shown, spec = [], []
    for name, cells in zip(cols, columns):
        if name in numeric:
            known = {c: _after_point(c) for c in set(cells)}  # a history repeats its costs and bests
            points = [known[c] for c in cells]
            most = max(points, default=-1)
            if most >= 0:
                cells = [c + " " * (most - p) if p < most else c for c, p in zip(cells, points)]
            align = ">"
        else:
            cells = [c.strip() for c in cells]
            align = "<"
        width = max(len(name) + 2, max(map(len, cells), default=0))
        shown.append(cells)
        spec.append(f"{{:{align}{width}}}")
    line = "  ".join(spec).format  # one call a line, not one a cell
    rule = "  ".join("-" * max(len(n) + 2, max(map(len, c), default=0)) for n, c in zip(cols, shown))
    return "\n".join([line(*cols).rstrip(), rule, *[line(*cells).rstrip() for cells in zip(*shown)]])
