"""`arl image`: build the sandbox images a run would use, and print the tag of the last one on stdout.

Inside a lab: the base, the agent layer of `[agent] kind` (or --agent), and the lab's own image when
`[sandbox] dockerfile` is set. Outside a lab: the base, plus the --agent layer when given. Every image already
current is left alone (one `docker image inspect` each); --force rebuilds the top one (the lab's own layer when it
has a Dockerfile), --force-all every one. Only images this call replaced are removed afterwards."""

from __future__ import annotations

import argparse
import os

from arl.config.config import LabConfig, find_lab, load
from arl.errors import ArlError


def build_images(
    cfg_or_none: LabConfig | None, base_from: str | None, agent: str | None, force: bool, force_all: bool = False
) -> int:
    from arl.sandbox import images

    if cfg_or_none is not None:
        kind = agent or cfg_or_none.agent_kind
        tag = images.ensure_lab_image(cfg_or_none, kind, base_from, force=force, force_all=force_all)
    elif agent:
        tag = images.ensure_agent_image(agent, base_from, force=force, force_all=force_all)
    else:
        tag = images.ensure_base(base_from, force or force_all)
    print(tag)  # stdout holds only the tag, for `docker run "$(arl image)" ...`
    return 0


def _lab_or_none(explicit: str | None) -> LabConfig | None:
    """The lab around here, or None outside any; a lab asked for by name, or a broken lab.toml, is an error."""
    try:
        path = find_lab(explicit=explicit)
    except ArlError:
        if explicit or os.environ.get("ARL_LAB"):
            raise
        return None
    return load(path)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The command's options (arl.cli builds them only when this command runs)."""
    p.add_argument(
        "--base-from",
        choices=["registry", "debootstrap"],
        default=None,
        help="where the base image comes from: a registry pull, or a Debian built with debootstrap "
        "(default: what the engine has, else a pull, else debootstrap)",
    )
    p.add_argument("--agent", help="also build this agent's layer (default: the lab's [agent] kind)")
    p.add_argument(
        "--force",
        action="store_true",
        help="rebuild the top image, the lab's own layer when it has a Dockerfile (default: off)",
    )
    p.add_argument("--force-all", action="store_true", help="rebuild every image, the base too (default: off)")


def from_args(args: argparse.Namespace) -> int:
    return build_images(_lab_or_none(args.lab), args.base_from, args.agent, args.force, args.force_all)
