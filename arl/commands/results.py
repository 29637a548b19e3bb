"""`arl results`: the experiment history as a table, TSV, JSON or Markdown."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

from arl.commands.tables import column_table
from arl.config.config import LabConfig
from arl.config.context import open_lab
from arl.errors import UsageError
from arl.history import results as res
from arl.util.text import clean

if TYPE_CHECKING:
    from arl.history.format import Row

_SHOWN = ["id", "time", "outcome", "score", "verified_score", "holdout_score", "best", "cost_usd", "notes"]
_NUMERIC = {"id", "slot", "score", "verified_score", "holdout_score", "best", "cost_usd"}


def select(
    cfg: LabConfig,
    rows: list[Row],
    last: int | None,
    best: bool,
    run: int | None = None,
    slot: int | None = None,
) -> list[Row]:
    """The rows shown: the whole history unless --run, --slot, --last or --best narrows it."""
    if best:
        kept = [r for r in rows if r["outcome"] == "keep"]
        _, best_id = res.best_of(cfg, kept)
        return [r for r in kept if r["id"] == best_id]
    if run is not None:
        rows = [r for r in rows if r["run"] == run or r["outcome"] == "baseline"]
    if slot is not None:  # a history from before slots: every experiment was slot 0's
        rows = [r for r in rows if (r.get("slot") or 0) == slot or r["outcome"] == "baseline"]
    return rows[-last:] if last else rows


def _time(v: Any) -> str:
    return clean(str(v)).replace("T", " ")[:19]


def _notes(v: Any) -> str:
    # tabs and newlines would break the table's lines; the rest is escaped before the cut, so the width holds
    text = " ".join(clean(str(v), newlines=True).split())
    return text if len(text) <= 50 else text[:49] + "…"


def _other(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v) if isinstance(v, int) else clean(str(v))


_CELL = {"time": _time, "cost_usd": lambda v: f"{v:.4f}", "notes": _notes}


def _columns(rows: list[Row], cols: list[str]) -> list[list[str]]:
    """The table's cells, column by column. Any text in them may come from the agent: its control characters are
    escaped."""
    columns = []
    for c in cols:
        fmt = _CELL.get(c, _other)
        columns.append([fmt(v) if v is not None else "" for v in [r[c] for r in rows]])  # type: ignore[literal-required]
    return columns


def _md(v: Any) -> Any:
    """A Markdown table cell: a `|` in the text would end the cell."""
    return v.replace("|", "\\|") if isinstance(v, str) else v


def show_results(
    cfg: LabConfig, fmt: str, last: int | None, best: bool, run: int | None = None, slot: int | None = None
) -> int:
    if last is not None and last < 1:
        raise UsageError(f"--last must be at least 1, not {last}")
    whole: list[Row] | None = None  # every row, when they were read
    if best or run is not None or slot is not None:
        whole = res.read(cfg.results_file).rows
        rows = select(cfg, whole, last, best, run, slot)
    else:  # the whole history or its end, which is all that is read
        rows = res.read_last(cfg.results_file, last)
        whole = rows if last is None else None
    if fmt == "json":
        print(json.dumps(rows, default=str))
    elif fmt == "csv":  # autoresearch-lab's format name: the same columns, comma-separated, quoted as csv does
        import csv

        out = csv.writer(sys.stdout, lineterminator="\n")
        out.writerow(res.COLUMNS)
        for r in rows:
            cells = [r.get(c) for c in res.COLUMNS]
            cells[res.COLUMNS.index("metrics")] = json.dumps(r["metrics"] or {}, sort_keys=True, default=str)
            out.writerow(["" if v is None else clean(str(v), newlines=True) for v in cells])
    elif fmt == "tsv":
        # Its tabs and newlines are the file's layout, and the file's own escapes in notes stay as they are.
        sys.stdout.write(clean(res.header_line() + "".join(res.format_row(r) for r in rows), newlines=True))
    else:
        cols = [c for c in _SHOWN if c != "holdout_score" or any(r["holdout_score"] is not None for r in rows)]
        if any(r.get("slot") for r in rows):  # parallel agents: whose experiment each row is
            cols.insert(cols.index("outcome"), "slot")
        columns = _columns(rows, cols)
        if fmt == "markdown":
            from tabulate import tabulate  # only here: importing it costs more than reading 10,000 rows

            table = [[_md(v) for v in line] for line in zip(*columns)]
            # The cells are already formatted: tabulate must not re-parse (and re-format) the numbers.
            align = ["right" if c in _NUMERIC else "left" for c in cols]
            print(tabulate(table, headers=cols, tablefmt="github", disable_numparse=True, colalign=align))
        else:
            print(column_table(columns, cols, _NUMERIC))
        if not rows and fmt == "table":
            print("(no experiments yet)")
        if fmt == "table" and whole is not None:  # not after --last N alone: a run's cost needs all its rows
            for line in unrecorded_costs(cfg, whole):
                print(line)
    return 0


def unrecorded_costs(cfg: LabConfig, rows: list[Row]) -> list[str]:
    """A line per run whose total cost (at its end) is more than its rows' (`rows`: the whole history): sessions
    that ended without a verdict, or spent past the last one, cost money too."""
    if not (cfg.state_dir / "runs.jsonl").exists():  # no run ever ended here: nothing to import or read
        return []
    from arl.report.transcript import events

    lines = []
    for e in events(cfg, ("end",)):
        spent = float(e.get("cost") or 0.0)
        in_rows = sum(float(r["cost_usd"] or 0.0) for r in rows if r["run"] == e.get("run"))
        if spent - in_rows > 5e-5:
            lines.append(
                f"run {e.get('run')}: ${spent:.4f} spent in all, ${spent - in_rows:.4f} of it in no experiment's row "
                "(sessions that ended without a verdict)"
            )
    return lines


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The command's options (arl.cli builds them only when this command runs)."""
    p.add_argument(
        "--format",
        choices=["table", "tsv", "csv", "json", "markdown"],
        default="table",
        help="the output format (default: table)",
    )
    p.add_argument(
        "--json", dest="format", action="store_const", const="json", help="the same as --format json (default: off)"
    )
    p.add_argument("--run", type=int, help="only the experiments of run N, with the baseline (default: every run)")
    one_slot = "only the experiments of parallel agent K, with the baseline (default: every slot)"
    p.add_argument("--slot", type=int, metavar="K", help=one_slot)
    p.add_argument("--last", type=int, help="only the last N experiments shown (default: all)")
    p.add_argument("--best", action="store_true", help="only the best kept experiment")
    p.add_argument(
        "--all-runs", action="store_true", help="every run, which is the default now; kept for scripts (default: on)"
    )


def from_args(args: argparse.Namespace) -> int:
    # --all-runs is what every call shows now; it stays accepted for the scripts that pass it
    return show_results(open_lab(args.lab), args.format, args.last, args.best, args.run, getattr(args, "slot", None))
