"""`arl run`: the research loop, the same steps in the same order as the lab Makefile's `research` target, each
through the one `run_step` that `arl-step` uses too."""

from __future__ import annotations

import argparse
import os
import signal
from collections.abc import Callable
from pathlib import Path
from types import FrameType

from arl.config.context import open_lab
from arl.errors import ArlError
from arl.loop.launching import launch
from arl.loop.run import INTERRUPTED, STOP, run_step
from arl.loop.turn import next_turn
from arl.steps.baseline import baseline
from arl.steps.image import image
from arl.steps.preflight import preflight
from arl.steps.service import service_up
from arl.steps.should_stop import should_stop
from arl.steps.teardown import teardown
from arl.util import sh
from arl.util.fsutil import resource_dir


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def run_loop(lab: str | None, args: argparse.Namespace) -> int:
    """The steps of the lab Makefile's `research` target, in its order, each through the same `run_step` as an
    `arl-step` process (its fault point, the run's end recorded on a failure), and the same exit code: teardown's."""
    if args.dry_run:
        from arl.commands.dry_run import dry_run

        return dry_run(open_lab(lab), args)
    signal.signal(signal.SIGTERM, _interrupt)  # `kill PID` tears down like Ctrl-C
    me = os.getpid()
    _say_if_the_makefile_loop_differs(lab)

    def step(name: str, body: Callable[[], int]) -> int:
        return run_step(name, lab, body, me)

    step("preflight", lambda: preflight(lab, args, me))
    try:
        step("image", lambda: image(lab))
        step("service-up", lambda: service_up(lab))
        step("baseline", lambda: baseline(lab))
        # e.g. the history already ends on a plateau: no container for nothing
        if step("should-stop", lambda: should_stop(lab)) != STOP:
            step("launch", lambda: launch(lab))
            while step("next", lambda: next_turn(lab)) != STOP:  # wait, then decide or restart, then the stop rule
                pass
    except KeyboardInterrupt:
        sh.say("arl: interrupted; tearing down")
        teardown(lab, INTERRUPTED)
        return 130
    except ArlError as e:
        teardown(lab, f"error: {e}")
        raise
    except BaseException as e:
        teardown(lab, f"internal error: {type(e).__name__}: {e}")
        raise
    return teardown(lab)


def _say_if_the_makefile_loop_differs(lab: str | None) -> None:
    """`arl run` runs arl's steps, never the lab's Makefile: a step a user added there runs under `make research`
    only. Said at the start, so that nobody believes theirs ran."""
    cfg = open_lab(lab)
    mine = research_recipe(cfg.root / "Makefile")
    if mine is not None and mine != research_recipe(resource_dir("templates") / "lab" / "Makefile"):
        sh.say(
            "arl run: the `research` target of this lab's Makefile differs from arl's loop (a step of yours?); "
            "arl run runs arl's steps only: `make research` runs yours"
        )


def research_recipe(makefile: Path) -> list[str] | None:
    """The `research` target's recipe lines, whitespace-normalised; None without a Makefile or such a target."""
    try:
        lines = makefile.read_text(errors="replace").splitlines()
    except OSError:
        return None
    if "research:" not in lines:
        return None
    recipe = []
    for line in lines[lines.index("research:") + 1 :]:
        if not line.startswith("\t"):
            break
        recipe.append(" ".join(line.split()))
    return recipe


def from_args(args: argparse.Namespace) -> int:
    return run_loop(args.lab, args)
