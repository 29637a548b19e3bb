"""`arl verdict keep|discard`: the agent's proposal, from inside the sandbox. Blocks until the host answers."""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

from arl.config.context import last_eval_path, open_lab
from arl.errors import ArlError
from arl.util.fsutil import write_json


def propose(action: str, notes: str, timeout: float | None) -> int:
    control_env = os.environ.get("ARL_CONTROL")
    if not control_env:
        raise ArlError("`arl verdict` runs inside the sandbox (ARL_CONTROL is not set); on the host use arl-step")
    control = Path(control_env)
    try:
        seq = int(json.loads((control / "expected.json").read_text())["seq"])
    except (OSError, ValueError, KeyError, TypeError):
        raise ArlError(f"cannot read {control / 'expected.json'}: is the host's loop running?")
    last: dict[str, Any] = {}
    try:
        last = json.loads(last_eval_path().read_text())
    except (OSError, ValueError):
        pass
    if action == "keep":
        from arl.sandbox.workspace import workspace_tree

        tree, problem = workspace_tree(open_lab(None))
        if problem:
            print(f"arl: note: the host cannot import your workspace: {problem}; it will reject this", flush=True)
        elif last.get("tree") != tree:
            print(
                "arl: note: the pipeline changed since your last `arl eval`; the host will reject this keep", flush=True
            )
    verdict = {
        "seq": seq,
        "action": action,
        "notes": notes,
        "score": last.get("score"),
        "metrics": last.get("metrics", {}),
        "tree": last.get("tree"),
        "time": time.time(),
    }
    ack_path = control / f"ack-{seq}.json"
    ack_path.unlink(missing_ok=True)
    write_json(control / f"verdict-{seq}.json", verdict, fsync=False)  # temp file + rename: never half-read
    deadline = None if timeout is None else time.monotonic() + timeout
    while not ack_path.exists():
        if deadline is not None and time.monotonic() > deadline:
            raise ArlError(f"no answer from the host within {timeout:g} s")
        time.sleep(0.02)
    ack = json.loads(ack_path.read_text())
    print(json.dumps(ack))
    return 0 if ack.get("outcome") != "rejected" else 1


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The command's options (arl.cli builds them only when this command runs)."""
    p.add_argument("action", nargs="?", choices=["keep", "discard"], help="keep: commit this change; discard: drop it")
    p.add_argument(
        "--action",
        dest="action_flag",
        choices=["keep", "discard"],
        help="the same, as autoresearch-lab spelled it (default: none)",
    )
    p.add_argument("--notes", default="", help="what was tried and why, for the history (default: none)")
    p.add_argument("--timeout", type=float, default=None, help="seconds to wait for the host's ack (default: no limit)")


def from_args(args: argparse.Namespace) -> int:
    from arl.errors import UsageError

    action = args.action or getattr(args, "action_flag", None)  # `--action keep` as autoresearch-lab spelled it
    if action is None or args.action_flag not in (None, action):
        raise UsageError("say keep or discard once: arl verdict keep|discard --notes TEXT")
    return propose(action, args.notes, args.timeout)
