"""The one old import path of arl's git hooks: until the runner moved to hooks/hookrun.py (run by path), the hooks
ran `from arl.hookrun import main`, and a hook that finds nothing lets every commit through unchecked (a keep's
`make guard` skipped). The next run's preflight rewrites arl's outdated hooks from the current template, so such a
hook still fires only in a run that was already going when arl was upgraded; this path keeps that run's guard.

Only this one: hooks written between 2026-11-28 and 2026-12-05 import `arl.lab.hookrun`, which matters only to a
run an arl of that week started that is still going, and the next run rewrites them too. This module can go once
no run started by an arl older than hooks/hookrun.py can still be going."""

from __future__ import annotations

import runpy

from arl.util.fsutil import resource_dir


def main(argv: list[str]) -> int:
    return int(runpy.run_path(str(resource_dir("hooks") / "hookrun.py"))["main"](argv))
