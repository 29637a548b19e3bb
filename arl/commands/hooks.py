"""`arl hooks install|uninstall`."""

from __future__ import annotations

import argparse
from pathlib import Path

from arl.config.config import find_lab
from arl.git import githooks as hooks


def hooks_command(action: str, where: Path) -> int:
    repo = hooks.repo_root(where)
    if action == "install":
        for p in hooks.install(repo):
            print(f"installed {p}")
    else:
        removed = hooks.uninstall(repo)
        for p in removed:
            print(f"removed {p}")
        if not removed:
            print("no arl hooks were installed")
    return 0


def from_args(args: argparse.Namespace) -> int:
    where = find_lab(explicit=args.lab).parent if args.lab else Path.cwd()
    return hooks_command(args.action, where)
