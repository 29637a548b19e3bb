"""`python -m arl.report.worker LAB_TOML`: the live page's worker process (arl.report.live), started by the loop with
the worker's lock held on the descriptor named by ARL_REPORT_LOCK_FD. It runs at a lower priority than the loop: the
page may wait, the decider and the agents may not."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from arl.config import config
from arl.report import live


def main(argv: list[str]) -> int:
    fd = int(os.environ.pop("ARL_REPORT_LOCK_FD"))
    try:
        os.nice(19)
    except OSError:
        pass  # the priority is a courtesy
    live.work(config.load(Path(argv[0])), fd)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
