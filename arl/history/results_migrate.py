"""An autoresearch-lab results.tsv (`experiment_id timestamp score metrics kept commit_sha notes`), converted once
to arl's columns, so that `arl results`, `arl plot` and `arl run` go on from a history begun with that tool.

Its experiments become run 0 (arl's runs count from 1), numbered from 1 (experiment 0 stays the baseline that
`arl run` records), `keep` or `discard` as its `kept` column says, agent `autoresearch-lab`. Its commit goes into
metrics rather than the commit column: that column names the snapshot of an arl experiment, which a repair may
re-commit. autoresearch-lab only minimises, so `best` is the running minimum of the kept scores."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import os
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from arl.errors import ArlError
from arl.history.format import format_row, header_line

if TYPE_CHECKING:
    from arl.history.format import Row

HEADER = ["experiment_id", "timestamp", "score", "metrics", "kept", "commit_sha", "notes"]
SUFFIX = ".autoresearch-lab"


def convert(path: Path, text: str, data: bytes, write: bool = False) -> str:
    """arl's text for the autoresearch-lab history `text` (the bytes `data`, as read from `path`). Reading converts
    in memory only (a read-only command writes nothing); with `write` (a run is about to append) the file is
    rewritten, atomically, the original kept beside it, when it can be."""
    rows = _rows(path, text)
    new = header_line() + "".join(format_row(r) for r in rows)
    if not write:
        return new
    tmp = path.with_name(f".{path.name}.converting")
    try:
        tmp.write_text(new, encoding="utf-8")
        backup = _free_name(path)
        backup.write_bytes(data)
        os.replace(tmp, path)
    except OSError as e:
        if tmp.is_file():
            tmp.unlink()
        print(f"arl: read {path} as autoresearch-lab's history; could not convert it: {e.strerror}", file=sys.stderr)
        return new
    print(
        f"arl: converted {path.name} from autoresearch-lab's format to arl's ({len(rows)} experiments, as run 0); "
        f"the original is kept as {backup.name}; commit the converted {path.name}",
        file=sys.stderr,
    )
    return new


def _free_name(path: Path) -> Path:
    for n in range(1000):
        candidate = path.with_name(path.name + SUFFIX + (f".{n}" if n else ""))
        if not candidate.exists():
            return candidate
    raise ArlError(f"{path}: too many earlier copies named {path.name}{SUFFIX}.N")


def _rows(path: Path, text: str) -> list[Row]:
    records = [r for r in csv.reader(io.StringIO(text), delimiter="\t") if r][1:]
    numbers = [_number(r[0]) for r in records]
    known = [n for n in numbers if n is not None]
    # its ids are `exp_NNN`; anything else, or ids that do not rise, are numbered in file order
    rising = len(known) == len(numbers) and all(a < b for a, b in zip(known, known[1:]))
    rows: list[Row] = []
    best: float | None = None
    for k, cells in enumerate(records):
        where = f"{path}: line {k + 2}"
        if len(cells) != len(HEADER):
            raise ArlError(f"{where} has {len(cells)} columns, expected {len(HEADER)} (autoresearch-lab's format)")
        exp_id, stamp, score_text, metrics_text, kept, sha, notes = cells
        try:
            score = float(score_text) if score_text.strip() else None
            metrics = json.loads(metrics_text) if metrics_text.strip() else {}
        except ValueError:
            raise ArlError(f"{where}: an unreadable score {score_text[:40]!r} or metrics {metrics_text[:40]!r}")
        metrics = dict(metrics) if isinstance(metrics, dict) else {"metrics": metrics}
        metrics["autoresearch_lab_id"] = exp_id
        if sha and sha != "reverted":
            metrics["autoresearch_lab_commit"] = sha
        outcome = "keep" if kept.strip().lower() in ("yes", "true", "1") else "discard"
        if outcome == "keep" and score is not None and (best is None or score < best):
            best = score
        rows.append(
            {
                "id": numbers[k] if rising else k + 1,
                "run": 0,
                "time": _utc(stamp),
                "outcome": outcome,
                "score": score,
                "verified_score": None,
                "holdout_score": None,
                "best": best,
                "cost_usd": None,
                "commit": None,
                "agent": "autoresearch-lab",
                "notes": notes,
                "metrics": metrics,
                "slot": None,
            }
        )
    return rows


def _number(exp_id: str) -> int | None:
    m = re.fullmatch(r"\D*0*(\d+)", exp_id.strip())
    return int(m.group(1)) if m and int(m.group(1)) > 0 else None


def _utc(stamp: str) -> str | None:
    """arl's time format (ISO-8601 UTC, whole seconds, Z); a timestamp it cannot read is kept as it is."""
    try:
        when = dt.datetime.fromisoformat(stamp.strip())
    except ValueError:
        return stamp or None
    if when.tzinfo is not None:
        when = when.astimezone(dt.timezone.utc)
    return when.replace(tzinfo=None, microsecond=0).isoformat() + "Z"
