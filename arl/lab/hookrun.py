"""Git hooks installed by arl from 2026-11-28 until the lab/ split import `arl.lab.hookrun`; a hook that finds
nothing lets every commit through unchecked (its guard skipped). The next `arl run` rewrites them (preflight
refreshes arl's outdated hooks); until then this path must keep working: it runs the runner, hooks/hookrun.py."""

from __future__ import annotations

import runpy

from arl.util.fsutil import resource_dir


def main(argv: list[str]) -> int:
    return int(runpy.run_path(str(resource_dir("hooks") / "hookrun.py"))["main"](argv))
