"""`arl-step image`: make sure the sandbox image exists and is current (a no-op when it is)."""

from __future__ import annotations

import argparse
import os

from arl.config.engine import engine_kind
from arl.loop.run import OK, open_run
from arl.runstate import state


def image(lab: str | None) -> int:
    cfg, st = open_run(lab)
    from arl.sandbox import images

    base_from = os.environ.get("ARL_BASE_FROM") or None
    st["image"] = images.ensure_lab_image(cfg, st["settings"]["agent"], base_from)
    state.save(cfg, st)
    print(f"image {st['image']}")
    if engine_kind(cfg.engine, st["settings"]) == "slurm":
        from arl.engines.slurm import Slurm
        from arl.engines.slurm_probe import probe

        print(probe(Slurm(cfg), st["image"], st["settings"]["iteration_timeout"]))
    return OK


def from_args(args: argparse.Namespace) -> int:
    return image(args.lab)
