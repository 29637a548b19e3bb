"""`make bench`'s live-report figures: what keeping `.arl/report/index.html` current costs the decider per verdict
(the `report` phase of each decision's timing event, between the ack and the unfreeze), the decider's whole time per
verdict with the live report on and off (ARL_LIVE_REPORT=0), in a fresh lab and after a long history, and how soon
after each decision the page held its experiment. Figures, not assertions."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from . import bench_labs as L
from .bench_stats import Figure, figure

# the decider's own phases per verdict, detection excluded (as bench_slots counts them), the report's included
DECIDER = ("freeze", "import", "verify", "git", "restore", "results", "ack", "report", "unfreeze")


@contextlib.contextmanager
def live_report(on: bool) -> Iterator[None]:
    """The loops started meanwhile keep the live page current, or not (their environment comes from os.environ)."""
    old = os.environ.pop("ARL_LIVE_REPORT", None)
    if not on:
        os.environ["ARL_LIVE_REPORT"] = "0"
    try:
        yield
    finally:
        os.environ.pop("ARL_LIVE_REPORT", None)
        if old is not None:
            os.environ["ARL_LIVE_REPORT"] = old


def lags(lab: Path, run: int) -> list[float]:
    """Seconds from each decision (its timing event) to the first write of the page that held its experiment, from
    the page's write log (`.arl/report/writes.log`: time, rows held, seconds spent)."""
    log = lab / ".arl" / "report" / "writes.log"
    writes = []
    for line in log.read_text().splitlines() if log.exists() else []:
        parts = line.split()
        with contextlib.suppress(ValueError, IndexError):
            writes.append((float(parts[0]), int(parts[1])))
    out = []
    for t in L.verdict_timings(lab, run):  # ids run from 0 without a gap: experiment N is in a page of N + 1 rows
        when = next((w for w, n in writes if n > t["id"]), None)
        if when is not None:
            out.append(max(when - t["time"], 0.0))
    return out


def writes(lab: Path) -> list[float]:
    """Seconds per rewrite of the page by its worker (the page's write log), the run's last one included."""
    log = lab / ".arl" / "report" / "writes.log"
    return [float(x.split()[2]) for x in log.read_text().splitlines()] if log.exists() else []


def report_refresh(
    scratch: L.Scratch, n: int, history: int, say: Callable[[str], None], rounds: int = 2
) -> tuple[list[Figure], dict]:
    """Loops of `n` experiments, verify off: a fresh lab with the live report and one without, alternating for
    `rounds` rounds (the same seeds: the same proposals), then a lab with `history` prior experiments (a page of
    megabytes) with the report."""
    sec = "6. live report on the decider path"
    fresh, off, old = (L.knob_lab(scratch, f"report-{k}") for k in ("fresh", "off", "history"))
    L.seed_history(old, history)
    got: dict[str, list[dict[str, Any]]] = {"on": [], "off": [], "history": []}
    lag: dict[str, list[float]] = {"on": [], "history": []}
    complete: list[bool] = []
    plan = [(k, lab, on, r) for r in range(rounds) for k, lab, on in (("on", fresh, True), ("off", off, False))]
    for key, lab, on, r in [*plan, ("history", old, True, 0)]:
        say(f"live report {'on' if on else 'off'}, {key} lab: {n} experiments (round {r + 1})")
        with live_report(on):
            _, run = L.run_loop(lab, n, verify=False, seed=11 + r)
        got[key] += L.verdict_timings(lab, run)
        if on:
            lag[key] += lags(lab, run)
            page = lab / ".arl" / "report" / "index.html"
            complete.append(page.exists() and '"active": false' in page.read_text())

    def decider(ts: list[dict[str, Any]], phases: tuple[str, ...] = DECIDER) -> list[float]:
        return [sum(float(t.get(k, 0.0)) for k in phases) * 1000 for t in ts]

    def report_ms(ts: list[dict[str, Any]]) -> list[float]:
        return [float(t.get("report", 0.0)) * 1000 for t in ts]

    no_docker = tuple(p for p in DECIDER if p not in ("freeze", "unfreeze"))
    figs = [
        figure(sec, "report refresh on the decider path, report on", "ms", report_ms(got["on"])),
        figure(sec, "report refresh on the decider path, report off", "ms", report_ms(got["off"])),
        figure(sec, f"report refresh on the decider path, after {history}", "ms", report_ms(got["history"])),
        figure(sec, "decider per verdict (freeze → unfreeze), report on", "ms", decider(got["on"])),
        figure(sec, "decider per verdict (freeze → unfreeze), report off", "ms", decider(got["off"])),
        figure(sec, "  without docker pause/unpause, report on", "ms", decider(got["on"], no_docker)),
        figure(sec, "  without docker pause/unpause, report off", "ms", decider(got["off"], no_docker)),
        figure(sec, f"decider per verdict, report on, after {history}", "ms", decider(got["history"])),
        figure(sec, "page holds the experiment, after its decision", "s", lag["on"]),
        figure(sec, f"page holds the experiment, after {history}", "s", lag["history"]),
        figure(sec, "worker: one rewrite of the page (off the path)", "ms", writes(fresh), scale=1000),
        figure(sec, f"worker: one rewrite of the page, after {history}", "ms", writes(old), scale=1000),
    ]
    for on_f, off_f in ((figs[3], figs[4]), (figs[5], figs[6])):
        on_f.goal, on_f.met = "≤ report off + 10 ms", on_f.median <= off_f.median + 10
        on_f.note = f"{on_f.median - off_f.median:+.1f} ms vs off ({rounds} alternating rounds)"
        off_f.note = "ARL_LIVE_REPORT=0"
    figs[0].goal, figs[0].met = "≤ 10 ms", figs[0].median <= 10
    figs[8].note = f"page complete after the run: {sum(complete)} of {len(complete)} runs"
    return figs, {"timings": got, "lags": lag, "complete": complete}


if __name__ == "__main__":  # `python -m tests.bench_report`: this table alone
    import sys

    from .bench_stats import as_json, table

    scratch = L.Scratch(keep="--keep" in sys.argv)
    try:
        figs, raw = report_refresh(scratch, 25, 1000, lambda m: print(f"bench: {m}", file=sys.stderr, flush=True))
        print(table(figs))
        out = Path(__file__).resolve().parent.parent / "bench-results" / "report.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({"figures": as_json(figs), "raw": raw}, default=str, indent=1) + "\n")
        print(f"written to {out}")
    finally:
        scratch.close()
