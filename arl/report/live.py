"""The live page of a lab, `.arl/report/index.html`, rewritten by the loop after each experiment. Cheap (only new
experiments' details are computed; the rows come from the parsed-history cache) and never fatal: a report that
cannot be written is logged and the loop goes on."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from arl.lab import results as res
from arl.report import gather, render
from arl.report.series import Series

if TYPE_CHECKING:
    from arl.lab.config import LabConfig


def path(cfg: LabConfig) -> Path:
    return cfg.state_dir / "report" / "index.html"


def write(cfg: LabConfig, active: bool, out: Path | None = None, more: list[gather.Lab] | None = None) -> Path:
    lab = gather.Lab(Series(cfg.name, cfg.results_file, cfg.maximize, res.read(cfg.results_file).rows), cfg)
    out = out or path(cfg)
    render.write(out, render.page(gather.page_json([lab, *(more or [])], active), f"arl report: {cfg.name}"))
    return out


def due(cfg: LabConfig) -> bool:
    """Whether the page is due for a rewrite: always, unless the last one was so recent that rewriting it again would
    cost more than 5% of the time since (a long history's page is megabytes; experiments minutes apart are never
    held back). The cost is the last rewrite's in this process, else estimated from the page's size."""
    try:
        st = path(cfg).stat()
    except OSError:
        return True
    cost = _spent[-1] if _spent else 0.005 + 0.02 * st.st_size / 1e6
    return time.time() - st.st_mtime >= 20 * cost


def refresh(cfg: LabConfig, active: bool = True) -> None:
    """The loop's call: rewrite the live page (when due, and always at the run's end); any failure is one line on
    stderr and a line in the log."""
    if active and not due(cfg):
        return
    started = time.perf_counter()
    try:
        write(cfg, active)
    except Exception as e:  # noqa: BLE001 - the report is a view: nothing in it may stop the loop
        message = f"arl: the live report was not written: {type(e).__name__}: {e}"
        print(message, file=sys.stderr, flush=True)
        try:
            with open(cfg.state_dir / "logs" / "report.log", "a") as f:
                f.write(f"{time.time():.3f} {message}\n")
        except OSError:
            pass
    finally:
        _spent.append(time.perf_counter() - started)


_spent: list[float] = []  # seconds per refresh in this process (the benchmark reads it)
