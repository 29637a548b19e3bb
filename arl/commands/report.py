"""`arl report [-o FILE] [LAB ...]`: one self-contained HTML page of a lab's history (the progress chart, the table,
each experiment's detail and diff, the runs), with other labs compared on one chart. Default output: the lab's live
page, `.arl/report/index.html`, the one the loop refreshes during a run."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from arl.config import config
from arl.errors import ArlError, UsageError
from arl.history import results as res
from arl.report import gather, live, render
from arl.report.series import parse_spec


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of `arl report` (arl.cli builds the parser only for the command being run)."""
    p.add_argument(
        "-o",
        "--output",
        help="the HTML file to write (default: .arl/report/index.html of the lab; report.html when no lab is open)",
    )
    more = "more labs to compare: a lab's folder, its lab.toml or its results.tsv, each as PATH or LABEL:PATH"
    p.add_argument("labs", nargs="*", metavar="LAB", help=more)


def other_lab(spec: str, maximize: bool) -> gather.Lab:
    """A lab given on the command line; its refs, transcripts and runs are read when its lab.toml is found."""
    s = parse_spec(spec, maximize)
    beside = s.path.resolve().parent / config.LAB_FILE
    cfg = None
    if beside.is_file():
        try:
            cfg = config.load(beside)
        except ArlError:
            cfg = None  # a foreign lab.toml: its history still plots
    return gather.Lab(s, cfg if cfg is not None and cfg.results_file.resolve() == s.path.resolve() else None)


def report(cfg: config.LabConfig | None, output: str | None, specs: list[str]) -> Path:
    maximize = cfg.maximize if cfg is not None else False
    others = [other_lab(spec, maximize) for spec in specs]
    if cfg is not None:
        out = live.write(cfg, gather.run_active(cfg), Path(output) if output else None, others)
    elif others:
        out = Path(output or "report.html")
        title = "arl report: " + ", ".join(lab.series.label for lab in others)
        render.write(out, render.page(gather.page_json(others, False), title))
    else:
        raise UsageError("nothing to report: run inside a lab, or name labs (their folders or results.tsv files)")
    rows = sum(len(lab.series.rows) for lab in others) + (len(res.read(cfg.results_file).rows) if cfg else 0)
    print(f"wrote {out} ({rows} experiments of {len(others) + (cfg is not None)} lab(s))", file=sys.stderr)
    print(out.resolve().as_uri())
    return out


def from_args(args: argparse.Namespace) -> int:
    specs: list[str] = list(args.labs or [])
    try:
        lab_file = config.find_lab(explicit=args.lab)
    except ArlError:
        if args.lab or not specs:
            raise
        report(None, args.output, specs)
        return 0
    from arl.config.context import open_lab

    report(open_lab(str(lab_file)), args.output, specs)
    return 0
