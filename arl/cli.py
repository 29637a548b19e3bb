"""`arl`: the command line for people. The only module that reads argv; commands are plain functions."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence

from .errors import ArlError, UsageError


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(message)


def _common(sub: bool = False) -> _Parser:
    """--lab and --debug, accepted before and after the command; a sub-command's copy must not reset them."""
    p = _Parser(add_help=False)
    default: str | None = argparse.SUPPRESS if sub else None
    p.add_argument("--lab", default=default, help="the lab folder (default: walk up from here to lab.toml)")
    p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS if sub else False, help="show tracebacks")
    return p


def add_run_flags(p: argparse.ArgumentParser) -> None:
    """The flags of `arl run`, shared with `arl-step preflight` (which records them for the other steps)."""
    p.add_argument("--data", required=True, help="read-only data folder the backend evaluates against")
    p.add_argument("--holdout", help="a second data folder that only the host sees")
    p.add_argument("--agent", help="claude | codex | command | offline | a dotted path to an adapter class")
    p.add_argument("--model")
    p.add_argument("--max-iterations", type=int)
    p.add_argument("--max-hours", type=float)
    p.add_argument("--max-cost", type=float)
    p.add_argument("--target-score", type=float)
    p.add_argument("--plateau-threshold", type=int)
    p.add_argument("--max-restarts", type=int)
    p.add_argument("--iteration-timeout", type=float)
    p.add_argument("--repeats", type=int)
    p.add_argument("--no-verify", action="store_true", help="trust the agent's score (not recommended)")
    p.add_argument("--branch", help="run on this branch (created when missing)")
    p.add_argument("--prompt", default="", help="extra instructions appended to the agent's prompt")
    p.add_argument("--use-oauth-osx", action="store_true", help="claude: read credentials from the macOS keychain")
    p.add_argument("--seed", type=int, help="offline agent: random seed")
    p.add_argument("agent_args", nargs="*", help="after --: passed to the agent untouched")


def build_parser() -> _Parser:
    common = _common(sub=True)
    parser = _Parser(prog="arl", description="Autonomous research loops with a sandboxed agent.", parents=[_common()])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    p = sub.add_parser("init", parents=[common], help="scaffold a lab here")
    p.add_argument("--name")
    p.add_argument("--pipeline-dir", default="pipeline")
    p.add_argument("--example")
    p.add_argument("--list-examples", action="store_true")
    p.add_argument("--force", action="store_true")

    p = sub.add_parser("run", parents=[common], help="run the research loop")
    add_run_flags(p)
    p.add_argument("--dry-run", action="store_true", help="print the command lines instead of running them")

    p = sub.add_parser("eval", parents=[common], help="evaluate the pipeline")
    p.add_argument("--data", default=os.environ.get("ARL_DATA"), required="ARL_DATA" not in os.environ)
    p.add_argument("--sample", action="append", default=[])
    p.add_argument("--json", action="store_true")
    p.add_argument("--repeats", type=int, default=1)

    p = sub.add_parser("diagnose", parents=[common], help="per-sample results, worst first")
    p.add_argument("--data", default=os.environ.get("ARL_DATA"), required="ARL_DATA" not in os.environ)
    p.add_argument("--top", type=int)
    p.add_argument("--sample", action="append", default=[])
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("verdict", parents=[common], help="(inside the sandbox) propose keep or discard")
    p.add_argument("action", choices=["keep", "discard"])
    p.add_argument("--notes", default="")
    p.add_argument("--timeout", type=float, default=None, help="seconds to wait for the host's ack")

    p = sub.add_parser("results", parents=[common], help="the experiment history")
    p.add_argument("--format", choices=["table", "tsv", "json", "markdown"], default="table")
    p.add_argument("--last", type=int)
    p.add_argument("--best", action="store_true")
    p.add_argument("--all-runs", action="store_true")

    p = sub.add_parser("plot", parents=[common], help="plot the score per experiment")
    p.add_argument("-o", "--output", default="progress.png")
    p.add_argument("files", nargs="*", metavar="LABEL:PATH")

    p = sub.add_parser("show", parents=[common], help="one experiment: diff, notes, scores, transcript")
    p.add_argument("id", type=int)

    p = sub.add_parser("status", parents=[common], help="is a run active, and how is it doing")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("image", parents=[common], help="build the sandbox images")
    p.add_argument("--base-from", choices=["registry", "debootstrap"], default=None)
    p.add_argument("--agent", help="also build this agent's layer")
    p.add_argument("--force", action="store_true", help="rebuild even when present")

    p = sub.add_parser("hooks", parents=[common], help="install or uninstall arl's git hooks")
    p.add_argument("action", choices=["install", "uninstall"])
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


def _main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    if not args.command:
        build_parser().print_help()
        return 2
    return _dispatch(args)


def main(argv: Sequence[str] | None = None) -> int:
    return handle_errors("arl", list(sys.argv[1:] if argv is None else argv), _main)


if __name__ == "__main__":
    sys.exit(main())
