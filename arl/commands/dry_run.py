"""`arl run --dry-run`: the docker and git command lines the loop would run, and which credential it found."""

from __future__ import annotations

import argparse
from pathlib import Path

from arl.agents.launch import check_agent, context
from arl.config.config import LabConfig
from arl.evaluation.contained import Box, planned
from arl.git import gitops, repo
from arl.runstate.runstate import resolve_settings
from arl.sandbox.docker_run import agent_run, container_name, verify_run
from arl.sandbox.workspace import LocalWorkspace
from arl.util import sh


def dry_run(cfg: LabConfig, args: argparse.Namespace) -> int:
    settings = resolve_settings(cfg, args)
    spec = check_agent(cfg, settings)
    print(f"# agent: {settings['agent']}; credentials: {spec.auth}")
    image = "arl-lab-<name>:latest" if cfg.dockerfile else f"arl-agent-{spec.image_layer or 'base'}:latest"
    data = Path(settings["data"])
    reps = settings["repeats"]
    state_dir = cfg.state_dir
    p = repo.rel(cfg, cfg.pipeline_dir)
    g = sh.git(repo.top(cfg))
    index = {"GIT_INDEX_FILE": str(cfg.state_dir / "keep.index")}
    lines = [
        sh.line(g["status", "--porcelain", "--untracked-files=all", "--", p]),
        f"arl image  # builds {image} when missing",
        "# the host's evaluations (baseline, keeps, holdout), a split backend's three containers; the copy of the",
        "# outputs between run and score is arl's own (regular files only, capped):",
        *(sh.line(c) for c in planned(Box(cfg, image, 0), data, state_dir / "checkouts" / "verify-<tree>", reps)),
        "# a single-phase backend's instead (it evaluates with the pipeline and the data in one container):",
        sh.line(
            verify_run(
                cfg,
                image=image,
                name=container_name(cfg, 0, 0, "verify"),
                run=0,
                data=data,
                repeats=reps,
                pipeline=state_dir / "checkouts" / "verify-<tree>",
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
                workspace=LocalWorkspace(cfg, 0).mount(),
                spec=spec,
                host_env=context(cfg, settings).host_env,
            )
        ),
        "# per verdict:",
        sh.line(sh.docker()["pause", container_name(cfg, 0, 1)]),
        "# the workspace .arl/workspaces/0 is imported as data (no git runs in it): its blobs and trees are",
        "# written into the repository's object store, then:",
        sh.line(g["commit-tree", "<tree>", "-p", "HEAD", "-m", "..."]) + "  # the attempt's snapshot",
        sh.line(g["update-ref", gitops.ref_name(cfg, 1), "<snapshot>", ""]) + "  # create-only: never moved",
        sh.line(g["cat-file", "--batch"]) + "  # keep: the kept tree, checked out for verification and into " + p,
        "# keep: .git/index is copied to .arl/keep.index, a private index (your staged work stays as it is)",
        sh.env_line(index, g["read-tree", "-m", "-i", "<the snapshot + results.tsv now>"]),
        sh.env_line({**index, "ARL_KEEP_LAB": str(cfg.root)}, g["commit", "-q", "-m", "..."]) + "  # hooks run",
        sh.line(g["reset", "-q", "--", p, repo.rel(cfg, cfg.results_file)]) + "  # keep: your index follows HEAD",
        "# discard: the workspace is emptied and written again from the best tree's objects",
        sh.line(sh.docker()["unpause", container_name(cfg, 0, 1)]),
    ]
    print("\n".join(lines))
    return 0
