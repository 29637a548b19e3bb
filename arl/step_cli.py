"""`arl-step NAME`: one step of the research loop, for the lab's Makefile and for people."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from importlib import import_module

from arl.cli import Parser, add_run_flags, common_options, entry, parse

# name -> (module in arl.steps, what it does, its exit codes)
STEPS: dict[str, tuple[str, str, str]] = {
    "preflight": (
        "preflight",
        "check the lab, take the lock, repair a dead run, start the run state",
        "0 ready, 1 error",
    ),
    "image": ("image", "build the sandbox image if missing or stale", "0 ready, 1 error"),
    "service-up": ("service", "start the lab's host service (no-op without one)", "0 up, 1 error"),
    "service-down": ("service", "stop the host service and its process group", "0"),
    "baseline": ("baseline", "evaluate the unmodified pipeline on the host as experiment 0 (once)", "0, 1 error"),
    "launch": ("launch", "start the agent's container (no-op when it runs)", "0 running, 1 error"),
    "wait": ("wait", "wait for the agent's verdict", "0 verdict ready, 3 container gone, 4 timed out, 1 error"),
    "decide": ("decide", "freeze, check the verdict, verify, commit or revert, ack, thaw", "0 done, 1 error"),
    "verify": ("verify", "evaluate the current pipeline in a fresh network-less container", "0, 1 failed"),
    "commit": ("manual", "import, verify and commit the slot's workspace as a keep (by hand)", "0, 1 error"),
    "revert": ("manual", "save the slot's workspace as a discard and restore it (by hand)", "0, 1 error"),
    "restart": ("restart", "record the attempt as a crash, restore the pipeline, relaunch", "0, 1 error"),
    "should-stop": ("should_stop", "is a stopping condition met? prints the reason", "0 stop, 3 go on, 1 error"),
    "next": ("next_step", "wait, then decide or restart, then should-stop, in one process", "0 stop, 3 go on, 1 error"),
    "teardown": ("teardown", "stop the agent, save its work, stop the service, unlock", "0, 1 stopped by failures"),
}


def _slot_flag(p: argparse.ArgumentParser, default: int | None, what: str) -> None:
    p.add_argument("--slot", type=int, default=default, metavar="K", help=what)


def _options(name: str, p: argparse.ArgumentParser) -> None:
    if name == "preflight":
        add_run_flags(p)
    elif name in ("commit", "revert"):
        p.add_argument("--notes", default="", help="what was tried and why, for the history (default: none)")
        _slot_flag(p, 0, "the slot whose workspace to record (default: 0)")
        if name == "commit":
            p.add_argument(
                "--force",
                action="store_true",
                help="keep it even when the host's score is worse than the best (default: off)",
            )
    elif name in ("decide", "restart"):
        what = "verdict to handle" if name == "decide" else "ended or silent agent to record and relaunch"
        _slot_flag(p, None, f"the slot whose {what} (default: the one `wait` found)")
    elif name == "launch":
        _slot_flag(p, None, "start only this slot's agent (default: every slot's that is not running)")
    elif name == "verify":
        _slot_flag(p, None, "the slot whose workspace to verify (default: 0)")


def build_parser(only: str | None = None, everything: bool = True) -> Parser:
    """The parser of `arl-step`: every step is listed, and with everything=False only `only`'s options are built."""
    from arl import __version__

    common = common_options(sub=True)
    epilog = "steps:\n" + "\n".join(f"  {n:13} {d}\n  {'':13} exit: {c}" for n, (_, d, c) in STEPS.items())
    parser = Parser(
        prog="arl-step",
        description="One step of the research loop.",
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[common_options()],
    )
    parser.add_argument("--version", action="version", version=f"arl-step {__version__}", help="print arl's version")
    sub = parser.add_subparsers(dest="step", metavar="STEP", parser_class=Parser, prog="arl-step")
    for name, (_, desc, codes) in STEPS.items():
        p = sub.add_parser(name, parents=[common], help=f"{desc} (exit: {codes})", description=f"{desc}. Exit: {codes}")
        if everything or name == only:
            _options(name, p)
    return parser


def _main(argv: list[str]) -> int:
    args = parse(argv, list(STEPS), build_parser, "step")
    if args is None:
        return 2
    module = import_module(f"arl.steps.{STEPS[args.step][0]}")
    from arl.loop.run import owner, run_step

    return run_step(args.step, args.lab, lambda: int(module.from_args(args)), owner())


def main(argv: Sequence[str] | None = None) -> int:
    return entry("arl-step", argv, _main)


if __name__ == "__main__":
    sys.exit(main())
