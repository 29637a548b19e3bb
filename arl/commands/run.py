"""`arl run`: the research loop, the same steps in the same order as the lab Makefile's `research` target."""

from __future__ import annotations

import argparse
import os
import signal
from types import FrameType

from arl.errors import ArlError
from arl.lab import results, state
from arl.lab.context import open_lab
from arl.loop.launching import launch
from arl.loop.run import OK, STOP
from arl.loop.stopping import failed
from arl.loop.turn import next_turn
from arl.steps.baseline import baseline
from arl.steps.image import image
from arl.steps.preflight import preflight
from arl.steps.service import service_up
from arl.steps.should_stop import should_stop
from arl.steps.teardown import teardown
from arl.util import faults, sh


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def run_loop(lab: str | None, args: argparse.Namespace) -> int:
    if args.dry_run:
        from arl.commands.dry_run import dry_run

        return dry_run(open_lab(lab), args)
    signal.signal(signal.SIGTERM, _interrupt)  # `kill PID` tears down like Ctrl-C
    preflight(lab, args, os.getpid())
    faults.point("after-preflight")
    try:
        image(lab)
        faults.point("after-image")
        service_up(lab)
        faults.point("after-service-up")
        baseline(lab)
        faults.point("after-baseline")
        if should_stop(lab) == STOP:  # e.g. the history already ends on a plateau: no container for nothing
            teardown(lab)
            return OK
        launch(lab)
        faults.point("after-launch")
        while next_turn(lab) != STOP:  # wait, then decide or restart, then the stop rule
            pass
    except KeyboardInterrupt:
        sh.say("arl: interrupted; tearing down")
        teardown(lab, "interrupted (Ctrl-C or SIGTERM)")
        return 130
    except ArlError as e:
        teardown(lab, f"error: {e}")
        raise
    except BaseException as e:
        teardown(lab, f"internal error: {type(e).__name__}: {e}")
        raise
    teardown(lab)
    return _exit_code(lab)


def _exit_code(lab: str | None) -> int:
    """1 when every experiment of the run crashed (something is broken: the backend, the image, not bad luck), or
    when the run stopped because things kept failing."""
    cfg = open_lab(lab)
    st = state.load(cfg)
    run = st.get("run")
    rows = results.read(cfg.results_file).rows
    mine = [r["outcome"] for r in rows if r["run"] == run and r["outcome"] != "baseline"]
    if mine and all(o == "crash" for o in mine):
        sh.say(f"arl: all {len(mine)} experiments of run {run} crashed; `arl show ID` has each one's reason")
        return 1
    return 1 if failed(st) else OK


def from_args(args: argparse.Namespace) -> int:
    return run_loop(args.lab, args)
