"""The data layer `arl plot` and `arl report` share: one lab's history as a Series, its running best, the short
label of a kept experiment's notes."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from arl.config import config
from arl.errors import ArlError, UsageError
from arl.history import results as res

if TYPE_CHECKING:
    from arl.history.format import Row

KEPT = ("baseline", "keep")
NOTE_CHARS = 40


@dataclass
class Series:
    label: str
    path: Path
    maximize: bool
    rows: list[Row]


def parse_spec(spec: str, maximize: bool) -> Series:
    """LABEL:PATH (or just PATH). The label and the direction come from a lab.toml beside the file, if any."""
    label, sep, path_text = spec.partition(":")
    if not sep or Path(spec).exists():
        label, path_text = "", spec
    if not path_text:
        raise UsageError(f"{spec!r}: expected LABEL:PATH (a results.tsv file)")
    path = Path(path_text).expanduser()
    if path.is_dir() and (path / config.LAB_FILE).is_file():  # a lab's folder: its results file
        path = config.load(path / config.LAB_FILE).results_file
    if not path.is_file():
        raise ArlError(f"no results file at {path} (given as {spec!r}; expected LABEL:PATH)")
    name = path.resolve().parent.name
    beside = path.resolve().parent / config.LAB_FILE
    if beside.is_file():
        try:
            cfg = config.load(beside)
            maximize, name = cfg.maximize, cfg.name
        except ArlError:
            pass  # a foreign or broken lab.toml: keep the direction we were given
    return Series(label or name, path, maximize, res.read(path).rows)


def better(a: float, b: float | None, maximize: bool) -> bool:
    return b is None or (a > b if maximize else a < b)


def running_best(rows: list[Row], maximize: bool) -> tuple[list[int], list[float]]:
    """The best kept score after each experiment (from the first scored baseline or keep on)."""
    xs: list[int] = []
    ys: list[float] = []
    best: float | None = None
    for r in rows:
        s = res.effective(r)
        if r["outcome"] in KEPT and s is not None and better(s, best, maximize):
            best = s
        if best is not None and r["id"] is not None:
            xs.append(r["id"])
            ys.append(best)
    return xs, ys


def legend_label(s: Series) -> str:
    experiments = sum(1 for r in s.rows if r["outcome"] != "baseline")
    kept = sum(1 for r in s.rows if r["outcome"] == "keep")
    return f"{s.label} ({experiments} experiment{'s' * (experiments != 1)}, {kept} kept)"


def note_label(notes: str) -> str:
    """A kept experiment's annotation: the first line of its notes, cut short, control characters gone."""
    from arl.util.text import clean

    first = clean(notes.strip().splitlines()[0]) if notes.strip() else ""
    return first if len(first) <= NOTE_CHARS else first[: NOTE_CHARS - 1] + "…"
