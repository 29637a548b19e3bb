"""The lab as a command sees it: config plus the sandbox's path overrides."""

from __future__ import annotations

import os
from pathlib import Path

from arl.config import config
from arl.config.config import LabConfig


def open_lab(explicit: str | None = None) -> LabConfig:
    """Load the lab. Inside the sandbox, ARL_PIPELINE and ARL_RESULTS point at the mounted copies."""
    cfg = config.load(config.find_lab(explicit=explicit))
    overrides: dict[str, Path] = {}
    if os.environ.get("ARL_PIPELINE"):
        overrides["pipeline_dir"] = Path(os.environ["ARL_PIPELINE"])
    if os.environ.get("ARL_RESULTS"):
        overrides["results_file"] = Path(os.environ["ARL_RESULTS"])
    return cfg._replace(**overrides) if overrides else cfg


def last_eval_path() -> Path:
    """Inside the sandbox: the agent's last `arl eval`, which `arl verdict` sends as its (unverified) claim."""
    return Path(os.environ.get("ARL_STATE_HOME", "/tmp")) / "arl-last-eval.json"


def in_sandbox() -> bool:
    return bool(os.environ.get("ARL_CONTROL"))
