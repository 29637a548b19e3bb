"""`arl-step preflight`: check the lab, take the lock, repair what a dead run left, start the run state."""

from __future__ import annotations

import argparse

from arl.config.context import open_lab
from arl.errors import ArlError
from arl.git import gitops
from arl.history import results
from arl.loop.run import OK, owner
from arl.runstate import state
from arl.runstate.runstate import new_run, resolve_settings
from arl.util import sh


def preflight(lab: str | None, args: argparse.Namespace, owner_pid: int) -> int:
    cfg = open_lab(lab)
    from arl.util.installed import warn_about_conflicts

    warn_about_conflicts()
    from arl.git import githooks

    for hook in githooks.refresh(githooks.repo_root(cfg.root)):  # an earlier arl's hook may import a path now gone
        sh.say(f"rewrote arl's {hook.name} hook from the current template")
    if not cfg.pipeline_dir.is_dir():
        raise ArlError(f"pipeline folder {cfg.pipeline_dir} does not exist ([lab] pipeline_dir in {cfg.path})")
    settings = resolve_settings(cfg, args)
    from arl.agents.launch import check_agent

    check_agent(cfg, settings)  # credentials first: nothing is built or launched without them
    stale = state.acquire_lock(cfg, owner_pid)
    try:
        old = state.load(cfg)
        if stale is not None or old.get("active"):
            from arl.loop.repair import repair

            sh.say(
                f"found an earlier run (run {old.get('run', '?')}, pid {(stale or {}).get('pid', '?')}) that "
                f"did not finish; repairing its state before starting"
            )
            repair(cfg, old)
        dirty = gitops.pipeline_dirty(cfg)
        if dirty:
            raise ArlError(
                f"the pipeline has uncommitted changes ({dirty[0].strip()}); commit or stash them "
                f"first: the agent starts from the last commit, and a keep rewrites the pipeline folder"
            )
        branch = gitops.use_branch(cfg, settings["branch"])
        results.ensure_file(cfg.results_file)
        hist = results.read(cfg.results_file)
        run = max([r["run"] or 0 for r in hist.rows] + [old.get("run", 0)]) + 1
        st = new_run(run, owner_pid, settings, branch, old)
        state.save(cfg, st)
        state.log_event(cfg, {"event": "start", "run": run, "pid": owner_pid, "settings": settings})
    except BaseException:
        if stale is None and not state.load(cfg).get("active"):
            state.release_lock(cfg)
        raise
    print(
        f"run {run} of lab {cfg.name!r} on branch {branch}: agent {settings['agent']}, "
        f"{len(hist.rows)} earlier experiments"
    )
    return OK


def from_args(args: argparse.Namespace) -> int:
    # In `make research` every step is its own process; the lock belongs to the recipe's shell.
    return preflight(args.lab, args, owner())
