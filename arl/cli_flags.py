"""Options that several commands share (`arl run` and `arl-step preflight`; --json and --format json), kept apart
from arl.cli so that it stays one screen of commands; importing this costs nothing beyond argparse."""

from __future__ import annotations

import argparse

FROM_LAB = "default: from lab.toml"


def add_run_flags(p: argparse.ArgumentParser) -> None:
    """The flags of `arl run`, shared with `arl-step preflight` (which records them for the other steps)."""
    p.add_argument("--data", required=True, help="the read-only data folder the backend evaluates against (required)")
    p.add_argument("--holdout", help="a second data folder that only the host sees (default: none)")
    p.add_argument("--agent", help=f"claude | codex | command | offline | pkg.mod:Class ({FROM_LAB} [agent] kind)")
    p.add_argument("--model", help=f"the agent's model, where it takes one ({FROM_LAB} [agent] model)")
    p.add_argument("--max-iterations", type=int, help=f"experiments in this run ({FROM_LAB} [run])")
    p.add_argument("--max-hours", type=float, help=f"wall-clock hours of this run ({FROM_LAB} [run])")
    p.add_argument("--max-cost", type=float, help=f"USD of agent cost in this run, 0 = unlimited ({FROM_LAB} [run])")
    from arl.runstate.runstate import target_flag

    p.add_argument(
        "--target-score",
        type=target_flag,
        help=f"stop once the best reaches this score; 'off': no target ({FROM_LAB} [run])",
    )
    p.add_argument(
        "--plateau-threshold",
        type=int,
        help=f"stop after this many experiments in a row without a new best ({FROM_LAB} [run])",
    )
    p.add_argument(
        "--max-restarts", type=int, help=f"stop after this many container failures in a row ({FROM_LAB} [run])"
    )
    p.add_argument(
        "--iteration-timeout", type=float, help=f"seconds an experiment may take, 0 = no limit ({FROM_LAB} [run])"
    )
    p.add_argument("--repeats", type=int, help=f"host evaluations per keep; the mean decides ({FROM_LAB} [run])")
    p.add_argument(
        "--no-verify",
        action="store_true",
        help=f"trust the agent's score instead of re-evaluating keeps; not recommended ({FROM_LAB} [run] verify)",
    )
    p.add_argument("--branch", help="run on this branch, created when missing (default: the current branch)")
    p.add_argument("--prompt", default="", help="extra instructions appended to the agent's prompt (default: none)")
    p.add_argument(
        "--use-oauth-osx",
        action="store_true",
        help="claude: read the credentials from the macOS keychain (default: off)",
    )
    p.add_argument("--seed", type=int, help="offline agent: its random seed (default: from the run number)")
    p.add_argument(
        "--agents", type=int, help=f"parallel agents, each with its own container and workspace ({FROM_LAB} [run])"
    )
    p.add_argument(
        "--engine",
        choices=["local", "slurm"],
        help=f"where the agents run: here, or as SLURM jobs ({FROM_LAB} [engine] kind)",
    )
    p.add_argument("agent_args", nargs="*", help="after --: passed to the agent untouched")
