"""`arl plot [-o FILE] [LABEL:PATH ...]`: the score per experiment of one lab or several on one chart: every
experiment a point (kept ones solid, annotated with their notes), a step line for each lab's running best."""

from __future__ import annotations

import argparse
import math
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from arl.config import config
from arl.config.config import LabConfig
from arl.errors import ArlError, UsageError
from arl.history import results as res
from arl.report.series import KEPT as _KEPT
from arl.report.series import Series, legend_label, note_label, parse_spec
from arl.report.series import running_best as _running_best

if TYPE_CHECKING:
    from arl.history.format import Row

DEFAULT_OUTPUT = "progress.png"
# tab:orange is left out: with one lab it marks the holdout line
COLOURS = ("tab:blue", "tab:green", "tab:red", "tab:purple", "tab:brown", "tab:pink", "tab:olive", "tab:cyan")


@dataclass
class Style:
    title: str | None = None
    xlabel: str = "experiment"
    ylabel: str | None = None
    ymin: float | None = None
    ymax: float | None = None
    figsize: tuple[float, float] | None = None
    labels: bool = True


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of `arl plot` (arl.cli builds the parser only for the command being run)."""
    p.add_argument(
        "-o",
        "--output",
        help=f"the image file (.png, .svg, .pdf); default: a window when a display is "
        f"available, else {DEFAULT_OUTPUT} in the lab's folder",
    )
    p.add_argument("--title", help="the chart's title (default: the lab's name, or none for several labs)")
    p.add_argument("--xlabel", default="experiment", help="the x axis label (default: experiment)")
    p.add_argument("--ylabel", help="the y axis label (default: score, and which way is better)")
    p.add_argument("--ymin", type=float, help="the lower end of the y axis (default: fit the data)")
    p.add_argument("--ymax", type=float, help="the upper end of the y axis (default: fit the data)")
    p.add_argument("--figsize", type=_figsize, help="width and height in inches, e.g. 10x5 (default: 8x4.5)")
    p.add_argument("--no-labels", action="store_true", help="do not annotate kept experiments with their notes")
    more = "more results.tsv files to compare on the same chart; LABEL defaults to the name in their lab.toml"
    p.add_argument("files", nargs="*", metavar="LABEL:PATH", help=more)


def _figsize(text: str) -> tuple[float, float]:
    parts = text.lower().replace(",", "x").split("x")
    try:
        w, h = (float(v) for v in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected WIDTHxHEIGHT in inches, e.g. 10x5")
    if not (0 < w <= 100 and 0 < h <= 100):
        raise argparse.ArgumentTypeError(f"{text!r}: width and height must be between 0 and 100 inches")
    return w, h


def display_available() -> bool:
    """Whether a window can open: macOS and Windows always; elsewhere an X11 or Wayland display."""
    if sys.platform in ("darwin", "win32"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def _import_pyplot(window: bool) -> Any:
    try:
        import matplotlib
    except ImportError:
        raise ArlError(
            "matplotlib is not installed: pip install '.[plot]' in a checkout of arl (or pip install matplotlib)"
        )
    if not window:
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _interactive(plt: Any) -> bool:
    from matplotlib import rcsetup

    backend = str(plt.get_backend()).lower()
    return backend not in {b.lower() for b in getattr(rcsetup, "non_interactive_bk", ["agg"])}


def _draw(ax: Any, s: Series, colour: str, holdout_colour: str, style: Style, by_slot: bool = False) -> list[float]:
    """One lab's points, best line, holdout and notes; returns the values drawn (for the y scale). by_slot: each
    point in its slot's colour (a run of parallel agents, one lab on the chart)."""
    scored = [r for r in s.rows if r["id"] is not None and res.effective(r) is not None]
    seen = sorted({int(r.get("slot") or 0) for r in scored})
    by_slot = by_slot and len(seen) > 1

    def hue(rows: list[Row]) -> Any:
        return [COLOURS[(int(r.get("slot") or 0) + 1) % len(COLOURS)] for r in rows] if by_slot else colour

    kept = [r for r in scored if r["outcome"] in _KEPT]
    other = [r for r in scored if r["outcome"] not in _KEPT]
    if other:
        # hollow in the lab's colour: not kept, and still telling which lab it belongs to
        xs, ys = [r["id"] for r in other], [res.effective(r) for r in other]
        ax.scatter(xs, ys, s=22, facecolors="none", edgecolors=hue(other), alpha=0.45)
    bx, by = _running_best(s.rows, s.maximize)
    if bx:
        ax.step(bx, by, where="post", color=colour, linewidth=1.5, label=legend_label(s))
    else:
        ax.plot([], [], color=colour, label=legend_label(s))  # still in the legend: "0 experiments"
    if kept:
        ax.scatter([r["id"] for r in kept], [res.effective(r) for r in kept], s=36, color=hue(kept), zorder=3)
    for k in seen if by_slot else []:  # the legend says which colour is which slot
        ax.scatter([], [], s=22, color=COLOURS[(k + 1) % len(COLOURS)], label=f"slot {k}")
    if style.labels:
        for r in kept:
            text = note_label(str(r.get("notes") or ""))
            if text and r["outcome"] == "keep":
                ax.annotate(
                    text,
                    (r["id"], res.effective(r)),
                    xytext=(4, 6),
                    textcoords="offset points",
                    fontsize="x-small",
                    color=colour,
                    rotation=20,
                )
    hold = [r for r in s.rows if r["id"] is not None and r["holdout_score"] is not None]
    if hold:
        ax.plot(
            [r["id"] for r in hold],
            [r["holdout_score"] for r in hold],
            color=holdout_colour,
            marker="x",
            linestyle="--",
            linewidth=1.2,
            label=f"{s.label}: holdout",
        )
    return [v for v in [res.effective(r) for r in scored] + [r["holdout_score"] for r in hold] if v is not None]


def _chart(plt: Any, series: list[Series], style: Style) -> Any:
    from matplotlib.ticker import MaxNLocator

    fig, ax = plt.subplots(figsize=style.figsize or (8, 4.5))
    values: list[float] = []
    for i, s in enumerate(series):
        colour = COLOURS[i % len(COLOURS)]
        values += _draw(ax, s, colour, "tab:orange" if len(series) == 1 else colour, style, len(series) == 1)
    if not values:
        ax.text(0.5, 0.5, "no experiments yet", ha="center", va="center", transform=ax.transAxes, alpha=0.6)
    finite = [v for v in values if math.isfinite(v)]
    if finite and min(finite) > 0 and max(finite) / min(finite) > 100 and style.ymin is None:
        ax.set_yscale("log")
    directions = {s.maximize for s in series}
    better = "" if len(directions) > 1 else (" (higher is better)" if series[0].maximize else " (lower is better)")
    ax.set_ylabel(style.ylabel if style.ylabel is not None else f"score{better}")
    ax.set_xlabel(style.xlabel)
    title = style.title if style.title is not None else (series[0].label if len(series) == 1 else "")
    if title:
        ax.set_title(title)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # experiments are whole numbers
    if style.ymin is not None or style.ymax is not None:
        ax.set_ylim(bottom=style.ymin, top=style.ymax)
    ax.grid(True, alpha=0.25)
    ax.legend(fontsize="small")
    fig.tight_layout()
    return fig


def plot(cfg: LabConfig | None, output: str | None, files: list[str], style: Style | None = None) -> int:
    maximize = cfg.maximize if cfg is not None else False
    series: list[Series] = []
    if cfg is not None:
        series.append(Series(cfg.name, cfg.results_file, cfg.maximize, res.read(cfg.results_file).rows))
    series += [parse_spec(spec, maximize) for spec in files]
    if not series:
        raise UsageError("nothing to plot: run inside a lab, or pass results files as LABEL:PATH")
    style = style or Style()
    if style.ymin is not None and style.ymax is not None and style.ymin >= style.ymax:
        raise UsageError(f"--ymin {style.ymin:g} must be below --ymax {style.ymax:g}")
    window = output is None and display_available()
    plt = _import_pyplot(window)
    if output is not None and output.lower().endswith(".svg"):
        plt.rcParams["svg.fonttype"] = "none"  # text stays text: searchable and editable
    fig = _chart(plt, series, style)
    experiments = sum(len(s.rows) for s in series)
    try:
        if window and _interactive(plt):
            print(
                f"showing {experiments} experiments of {len(series)} lab(s); close the window to finish",
                file=sys.stderr,
            )
            plt.show()
            return 0
        out = _output(cfg, output)
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            fig.savefig(out, dpi=110)
        except OSError as e:
            raise ArlError(f"cannot write {out}: {e.strerror}")
    finally:
        plt.close(fig)
    shown = os.path.relpath(out)
    print(
        f"wrote {out if shown.startswith('..') else shown} ({experiments} experiments of {len(series)} lab(s))",
        file=sys.stderr,
    )
    return 0


def _output(cfg: LabConfig | None, output: str | None) -> Path:
    """Where the image goes: -o as given, else the lab's folder (not wherever the command runs); never the pipeline,
    which the agent owns (a file there would also block the next run as uncommitted work)."""
    out = Path(output).resolve() if output else (cfg.root if cfg is not None else Path.cwd()) / DEFAULT_OUTPUT
    if cfg is not None and out.resolve().is_relative_to(cfg.pipeline_dir.resolve()):
        raise ArlError(f"{out} is inside the pipeline folder {cfg.pipeline_dir}: write the plot elsewhere (-o FILE)")
    return out


def from_args(args: argparse.Namespace) -> int:
    files: list[str] = list(args.files or [])
    style = Style(args.title, args.xlabel, args.ylabel, args.ymin, args.ymax, args.figsize, not args.no_labels)
    try:
        lab_file = config.find_lab(explicit=args.lab)
    except ArlError:
        if args.lab or not files:
            raise
        return plot(None, args.output, files, style)
    from arl.config.context import open_lab

    return plot(open_lab(str(lab_file)), args.output, files, style)
