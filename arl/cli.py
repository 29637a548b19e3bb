"""`arl`: the command line for people. The only module that reads argv; commands are plain functions.

Start-up is part of every command's cost (the loop's steps start several times per experiment), so only the chosen
command's options are built, and a command module is imported only when it runs."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence

from arl.cli_flags import FROM_LAB, add_run_flags
from arl.commands.options import json_flags
from arl.errors import ArlError, UsageError

__all__ = ["FROM_LAB", "add_run_flags", "json_flags"]  # arl-step builds preflight's options from these too


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(message)


def common_options(sub: bool = False) -> Parser:
    """--lab and --debug, accepted before and after the command; a sub-command's copy must not reset them."""
    p = Parser(add_help=False)
    default: str | None = argparse.SUPPRESS if sub else None
    p.add_argument(
        "--lab",
        default=default,
        help="the lab folder or its lab.toml (default: $ARL_LAB, else the first lab.toml walking up from here)",
    )
    p.add_argument(
        "--debug",
        action="store_true",
        default=argparse.SUPPRESS if sub else False,
        help="show tracebacks (default: off; ARL_DEBUG=1 too)",
    )
    quiet_help = "hide the docker and git command lines (default: shown; ARL_QUIET=1 too)"
    p.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS if sub else False, help=quiet_help)
    return p


def _run(p: argparse.ArgumentParser) -> None:
    add_run_flags(p)
    p.add_argument("--dry-run", action="store_true", help="print the command lines instead of running them")


def _own(name: str) -> Callable[[argparse.ArgumentParser], None]:
    """The options of a command whose module declares them (its add_arguments)."""
    from importlib import import_module

    return lambda p: import_module(f"arl.commands.{name}").add_arguments(p)


def _show(p: argparse.ArgumentParser) -> None:
    p.add_argument("id", type=int, help="the experiment's id (the id column of arl results)")


def _status(p: argparse.ArgumentParser) -> None:
    json_flags(p, "text")


def _hooks(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=["install", "uninstall"], help="install or remove arl's git hooks")


# name -> (its line in `arl --help`, its description in `arl NAME --help`, its options)
COMMANDS: dict[str, tuple[str, str, Callable[[argparse.ArgumentParser], None]]] = {
    "init": (
        "scaffold a lab here",
        "Write a lab into this folder: lab.toml, backend.py, AGENT.md, a Makefile "
        "(arl.mk, included from yours, when you have one), results.tsv, and arl's git hooks. It stops when "
        "those files exist, unless --force.",
        _own("init"),
    ),
    "run": (
        "run the research loop",
        "Run the research loop: preflight, image, baseline, then experiments until "
        "a stopping condition; the same steps as `make research`.",
        _run,
    ),
    "eval": (
        "evaluate the pipeline",
        "Evaluate the pipeline with the lab's backend, under [backend] eval_timeout, "
        "and print the score (JSON for scripts).",
        _own("evalcmd"),
    ),
    "diagnose": (
        "per-sample results, worst first",
        "Evaluate the pipeline and list the per-sample results, worst first (failed samples before all others).",
        _own("diagnose"),
    ),
    "verdict": (
        "(inside the sandbox) propose keep or discard",
        "Inside the sandbox: propose keep or discard for "
        "the last `arl eval`, then wait for the host's ack and print it.",
        _own("verdict"),
    ),
    "results": (
        "the experiment history",
        "Print the experiment history of the lab (every run; --run and --last "
        "narrow it) as a table, TSV, JSON or Markdown.",
        _own("results"),
    ),
    "plot": (
        "plot the score per experiment",
        "Plot the score per experiment of this lab, and of other results "
        "files to compare (needs matplotlib: pip install '.[plot]' in a checkout of arl).",
        _own("plot"),
    ),
    "report": (
        "an HTML page of the lab's history",
        "Write one self-contained HTML page of the lab's history: chart, "
        "table, each experiment's diff and transcript, the runs; more labs compared.",
        _own("report"),
    ),
    "show": (
        "one experiment: diff, notes, scores, transcript",
        "Show one experiment: its scores, notes, the diff of what it tried, and an excerpt of the agent's transcript.",
        _show,
    ),
    "status": (
        "is a run active, and how is it doing",
        "Say whether a run is active, its phase, experiment, best score, elapsed time, cost and container.",
        _status,
    ),
    "image": (
        "build the sandbox images",
        "Build the sandbox images (base, agent layer, the lab's own) when missing or stale, and print the tag to run.",
        _own("image"),
    ),
    "hooks": (
        "install or uninstall arl's git hooks",
        "Install or uninstall arl's git hooks (pre-commit runs "
        "`make guard` for keeps; post-commit runs `make on-keep`); foreign hooks are kept and chained.",
        _hooks,
    ),
}


def chosen(argv: Sequence[str], names: Sequence[str]) -> str | None:
    """The sub-command named in argv, found without parsing: the first word that is not an option or the value of
    --lab (also spelled as argparse's abbreviations of it). None when there is none or it is no known name."""
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--":
            return None
        elif arg in ("--l", "--la", "--lab"):
            skip = True
        elif not arg.startswith("-"):
            return arg if arg in names else None
    return None


def build_parser(only: str | None = None, everything: bool = True) -> Parser:
    """The parser of `arl`: every command is listed, and with everything=False only `only`'s options are built."""
    from arl import __version__

    common = common_options(sub=True)
    parser = Parser(
        prog="arl", description="Autonomous research loops with a sandboxed agent.", parents=[common_options()]
    )
    parser.add_argument("--version", action="version", version=f"arl {__version__}", help="print arl's version")
    # prog given: computing it formats a usage line, which imports shutil for the terminal width
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser, prog="arl")
    for name, (line, description, options) in COMMANDS.items():
        p = sub.add_parser(name, parents=[common], help=line, description=description)
        if everything or name == only:
            options(p)
    return parser


def _dispatch(args: argparse.Namespace) -> int:
    from importlib import import_module

    name = {"eval": "evalcmd"}.get(args.command, args.command)
    module = import_module(f"arl.commands.{name}")
    fn: Callable[[argparse.Namespace], int] = module.from_args
    return fn(args)


def handle_errors(prog: str, argv: list[str], body: Callable[[list[str]], int]) -> int:
    """The one error handler of `arl` and `arl-step`: an ArlError is one line and its exit code; a traceback
    only with --debug (or ARL_DEBUG=1)."""
    debug = "--debug" in argv or os.environ.get("ARL_DEBUG") == "1"
    if "-q" in argv or "--quiet" in argv:
        os.environ["ARL_QUIET"] = "1"  # read by every printed line, in this process and the ones it starts
    try:
        return body(argv)
    except ArlError as e:
        if debug:
            raise
        print(f"{prog}: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except Exception as e:  # a bug in arl: still one line, unless --debug
        if debug:
            raise
        print(
            f"{prog}: error: internal error: {type(e).__name__}: {e} (rerun with --debug for the traceback)",
            file=sys.stderr,
        )
        return 1


def exit_now(code: int) -> int:
    """The console scripts' exit, once their output is flushed: without the interpreter's teardown, which frees
    every object one by one (10,000 parsed rows take longer to free than to print). Only when nothing is left
    for a normal exit to do (no other thread, no exit handler); otherwise, and when the flush fails (a closed
    pipe), the code is returned for the normal exit, which reports as it always has."""
    import atexit

    threading = sys.modules.get("threading")
    if threading is not None and threading.active_count() > 1 or atexit._ncallbacks() or not 0 <= code < 256:
        return code
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except Exception:
        return code
    os._exit(code)


def parse(argv: list[str], names: list[str], build: Callable[..., Parser], dest: str) -> argparse.Namespace | None:
    """argv parsed by a parser built for the one command it names; None (after printing the help) when it names
    none. A word that is no command (an error to come, or a spelling the scan does not know) gets the full parser,
    so that argparse says what it always said; `--help` alone needs no command's options."""
    name = chosen(argv, names)
    parser = build(name, everything=name is None and any(not a.startswith("-") for a in argv))
    args = parser.parse_args(argv)
    if not getattr(args, dest):
        parser.print_help()
        return None
    return args


def entry(prog: str, argv: Sequence[str] | None, body: Callable[[list[str]], int]) -> int:
    """A console script's main: called as a function (tests, other tools), an ordinary return; as the script, the
    fast exit once the output is flushed."""
    if argv is not None:
        return handle_errors(prog, list(argv), body)
    return exit_now(handle_errors(prog, sys.argv[1:], body))


def _main(argv: list[str]) -> int:
    args = parse(argv, list(COMMANDS), build_parser, "command")
    return 2 if args is None else _dispatch(args)


def main(argv: Sequence[str] | None = None) -> int:
    return entry("arl", argv, _main)


if __name__ == "__main__":
    sys.exit(main())
