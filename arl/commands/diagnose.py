"""`arl diagnose`: per-sample results, worst first."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from arl.commands.options import data_flag, json_flags, local_flag
from arl.commands.tables import simple_table
from arl.config.config import LabConfig
from arl.config.context import open_lab
from arl.errors import UsageError
from arl.evaluation.measure import measure

_EXTRA_WIDTH = 60  # the extra column of many samples; one sample alone shows all of it


def worst_first(cfg: LabConfig, samples: list[dict[str, Any]]) -> list[dict[str, Any]]:
    # Failed samples are the worst of all; then by score against the lab's direction.
    def key(s: dict[str, Any]) -> tuple[int, float]:
        if s["score"] is None or s.get("error"):
            return (0, 0.0)
        return (1, s["score"] if cfg.maximize else -s["score"])

    return sorted(samples, key=key)


def diagnose(
    cfg: LabConfig, data: Path, top: int | None, samples: list[str], as_json: bool, local: bool = False
) -> int:
    if top is not None and top < 1:
        raise UsageError(f"--top must be at least 1, not {top}")
    result = measure(cfg, data, samples, 1, local)
    if samples:  # a single-phase backend may not filter by itself (autoresearch-lab's evaluate had no sample_ids)
        result = result._replace(sample_results=[s for s in result.sample_results if s["sample_id"] in samples])
    rows = worst_first(cfg, result.sample_results)
    if top is not None:
        rows = rows[:top]
    if as_json:
        print(json.dumps({"score": result.score, "samples": rows}, default=str))
        return 0
    print(f"score: {result.score:.6g}   ({len(result.sample_results)} samples, worst first)")
    if not rows:
        print("(the backend returned no per-sample results)")
        return 0
    width = None if len(rows) == 1 else _EXTRA_WIDTH
    table = [
        [
            str(s["sample_id"]),
            "" if s["score"] is None else f"{s['score']:.6g}",
            str(s.get("error") or ""),
            json.dumps(s.get("extra") or {}, default=str)[:width],
        ]
        for s in rows
    ]
    cols = ["sample", "score", "error", "extra"]
    # a column is numeric, right-aligned on the decimal point, when every cell is a number (tabulate's rule)
    numeric = [c for j, c in enumerate(cols) if all(_is_number(line[j]) for line in table)]
    print(simple_table(table, cols, numeric))
    return 0


def _is_number(cell: str) -> bool:
    try:
        float(cell)
        return True
    except ValueError:
        return False


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The command's options (arl.cli builds them only when this command runs)."""
    data_flag(p)
    p.add_argument("--top", type=int, help="show only the N worst samples (default: all)")
    local_flag(p)
    p.add_argument("--sample", action="append", default=[], help="only this sample id; repeatable (default: all)")
    json_flags(p, "a table")


def from_args(args: argparse.Namespace) -> int:
    return diagnose(open_lab(args.lab), Path(args.data), args.top, args.sample, args.json, args.local)
