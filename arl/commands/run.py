"""`arl run`: the research loop, the same steps in the same order as the lab Makefile's `research` target."""

from __future__ import annotations

import argparse
import os
import signal
from types import FrameType

from .. import faults, sh
from ..lab import open_lab
from ..steps.baseline import baseline
from ..steps.common import OK, STOP
from ..steps.decide import decide
from ..steps.image import image
from ..steps.launch import launch
from ..steps.preflight import preflight
from ..steps.restart import restart
from ..steps.service import service_up
from ..steps.should_stop import should_stop
from ..steps.teardown import teardown
from ..steps.wait import wait


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def run_loop(lab: str | None, args: argparse.Namespace) -> int:
    if args.dry_run:
        from .dry_run import dry_run

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
        launch(lab)
        faults.point("after-launch")
        while should_stop(lab) != STOP:
            got_verdict = wait(lab) == OK
            faults.point("after-wait")
            if got_verdict:
                decide(lab)
                faults.point("after-decide")
            else:
                restart(lab)
                faults.point("after-restart")
    except KeyboardInterrupt:
        sh.say("arl: interrupted; tearing down")
        teardown(lab)
        return 130
    except BaseException:
        teardown(lab)
        raise
    teardown(lab)
    return OK


def from_args(args: argparse.Namespace) -> int:
    return run_loop(args.lab, args)
