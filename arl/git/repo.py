"""The user's repository: its top folder, and a path as git names it there (relative to the top)."""

from __future__ import annotations

import functools
import os
from pathlib import Path

from arl.config.config import LabConfig
from arl.util import sh


def top(cfg: LabConfig) -> Path:
    return _top(cfg.root)


@functools.lru_cache(maxsize=8)
def _top(root: Path) -> Path:
    _, out, _ = sh.run(sh.git(root)["rev-parse", "--show-toplevel"], quiet=True)
    return Path(out.strip())


def rel(cfg: LabConfig, path: Path) -> str:
    return os.path.relpath(path.resolve(), top(cfg).resolve())
