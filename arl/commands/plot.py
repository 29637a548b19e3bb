"""`arl plot -o FILE [LABEL:PATH ...]`: score per experiment, kept ones solid, a step line for the running best."""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import config
from .. import results as res
from ..config import LabConfig
from ..errors import ArlError, UsageError

_KEPT = ("baseline", "keep")


@dataclass
class Series:
    label: str
    path: Path
    maximize: bool
    rows: list[dict[str, Any]]


def parse_spec(spec: str, maximize: bool) -> Series:
    """LABEL:PATH (or just PATH, labelled by its folder). The direction comes from a lab.toml beside the file."""
    label, sep, path_text = spec.partition(":")
    if not sep or Path(spec).is_file():
        label, path_text = "", spec
    if not path_text:
        raise UsageError(f"{spec!r}: expected LABEL:PATH (a results.tsv file)")
    path = Path(path_text).expanduser()
    if not path.is_file():
        raise ArlError(f"no results file at {path} (given as {spec!r}; expected LABEL:PATH)")
    beside = path.resolve().parent / config.LAB_FILE
    if beside.is_file():
        try:
            maximize = config.load(beside).maximize
        except ArlError:
            pass  # a foreign or broken lab.toml: keep the direction we were given
    return Series(label or path.resolve().parent.name, path, maximize, res.read(path).rows)


def _better(a: float, b: float | None, maximize: bool) -> bool:
    return b is None or (a > b if maximize else a < b)


def _running_best(rows: list[dict[str, Any]], maximize: bool) -> tuple[list[int], list[float]]:
    xs: list[int] = []
    ys: list[float] = []
    best: float | None = None
    for r in rows:
        s = res.effective(r)
        if r["outcome"] in _KEPT and s is not None and _better(s, best, maximize):
            best = s
        if best is not None and r["id"] is not None:
            xs.append(r["id"])
            ys.append(best)
    return xs, ys


def _import_pyplot() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise ArlError("matplotlib is not installed; pip install 'arl-research[plot]'")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _draw(ax: Any, s: Series) -> None:
    direction = "higher" if s.maximize else "lower"
    ax.set_title(s.label)
    ax.set_xlabel("experiment")
    ax.grid(True, alpha=0.25)
    scored = [r for r in s.rows if r["id"] is not None and res.effective(r) is not None]
    if not scored:
        ax.text(0.5, 0.5, "no experiments yet", ha="center", va="center", transform=ax.transAxes, alpha=0.6)
        return
    kept = [r for r in scored if r["outcome"] in _KEPT]
    other = [r for r in scored if r["outcome"] not in _KEPT]
    if other:
        ax.scatter(
            [r["id"] for r in other],
            [res.effective(r) for r in other],
            s=22,
            color="tab:gray",
            alpha=0.3,
            label="discarded / vetoed / other",
        )
    if kept:
        ax.scatter(
            [r["id"] for r in kept], [res.effective(r) for r in kept], s=36, color="tab:blue", zorder=3, label="kept"
        )
    bx, by = _running_best(s.rows, s.maximize)
    if bx:
        ax.step(bx, by, where="post", color="tab:blue", linewidth=1.5, label=f"best so far ({direction} is better)")
    hold = [r for r in s.rows if r["id"] is not None and r["holdout_score"] is not None]
    if hold:
        ax.plot(
            [r["id"] for r in hold],
            [r["holdout_score"] for r in hold],
            color="tab:orange",
            marker="x",
            linestyle="--",
            linewidth=1.2,
            label="holdout",
        )
    values = [res.effective(r) for r in scored] + [r["holdout_score"] for r in hold]
    finite = [v for v in values if v is not None and math.isfinite(v)]
    if finite and min(finite) > 0 and max(finite) / min(finite) > 100:
        ax.set_yscale("log")
    ax.legend(fontsize="small")


def plot(cfg: LabConfig | None, output: str, files: list[str]) -> int:
    maximize = cfg.maximize if cfg is not None else False
    series: list[Series] = []
    if cfg is not None:
        series.append(Series(cfg.name, cfg.results_file, cfg.maximize, res.read(cfg.results_file).rows))
    series += [parse_spec(spec, maximize) for spec in files]
    if not series:
        raise UsageError("nothing to plot: run inside a lab, or pass results files as LABEL:PATH")
    plt = _import_pyplot()
    n = len(series)
    fig, axes = plt.subplots(1, n, figsize=(min(5.5 * n, 22), 4.2), sharey=True, squeeze=False)
    for ax, s in zip(axes[0], series):
        _draw(ax, s)
    axes[0][0].set_ylabel("score")
    fig.tight_layout()
    out = Path(output)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(out, dpi=110)
    except OSError as e:
        raise ArlError(f"cannot write {out}: {e.strerror}")
    finally:
        plt.close(fig)
    experiments = sum(len(s.rows) for s in series)
    print(f"wrote {out} ({experiments} experiments in {n} series)", file=sys.stderr)
    return 0


def from_args(args: argparse.Namespace) -> int:
    files: list[str] = list(args.files or [])
    try:
        lab_file = config.find_lab(explicit=args.lab)
    except ArlError:
        if args.lab or not files:
            raise
        return plot(None, args.output, files)
    from ..lab import open_lab

    return plot(open_lab(str(lab_file)), args.output, files)
