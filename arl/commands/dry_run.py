"""`arl run --dry-run`: the docker and git command lines the loop would run, and which credential it found."""

from __future__ import annotations

import argparse
from pathlib import Path

from .. import gitops, sh
from ..agents.launch import check_agent, context
from ..config import LabConfig
from ..sandbox import agent_run, container_name, verify_run
from ..steps.preflight import resolve_settings


def dry_run(cfg: LabConfig, args: argparse.Namespace) -> int:
    settings = resolve_settings(cfg, args)
    spec = check_agent(cfg, settings)
    print(f"# agent: {settings['agent']}; credentials: {spec.auth}")
    image = "arl-lab-<name>:latest" if cfg.dockerfile else f"arl-agent-{spec.image_layer or 'base'}:latest"
    data = Path(settings["data"])
    state_dir = cfg.state_dir
    p = gitops.rel(cfg, cfg.pipeline_dir)
    g = sh.git(gitops.top(cfg))
    lines = [
        sh.line(g["status", "--porcelain", "--untracked-files=all", "--", p]),
        f"arl image  # builds {image} when missing",
        sh.line(
            verify_run(
                cfg,
                image=image,
                name=container_name(cfg, 0, 0, "verify"),
                run=0,
                data=data,
                repeats=settings["repeats"],
            )
        ),
        sh.line(
            agent_run(
                cfg,
                image=image,
                name=container_name(cfg, 0, 1),
                run=0,
                data=data,
                control=state_dir / "control",
                results_view=state_dir / "results-view.tsv",
                spec=spec,
                host_env=context(cfg, settings).host_env,
            )
        ),
        "# per verdict:",
        sh.line(sh.docker()["pause", container_name(cfg, 0, 1)]),
        sh.line(g["add", "-A", "--", p]) + "  # into a temporary index, then write-tree, commit-tree, update-ref",
        sh.line(g["commit", "-q", "-m", "...", "--", p, gitops.rel(cfg, cfg.results_file)]) + "  # keep",
        sh.line(g["restore", "--source=HEAD", "--staged", "--worktree", "--", p]) + "  # discard",
        sh.line(g["clean", "-fdq", "--", p]) + "  # discard",
        sh.line(sh.docker()["unpause", container_name(cfg, 0, 1)]),
    ]
    print("\n".join(lines))
    return 0
