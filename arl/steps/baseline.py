"""`arl-step baseline`: experiment 0, the unmodified pipeline evaluated by the host (once per lab)."""

from __future__ import annotations

import argparse
from pathlib import Path

from arl.errors import ArlError
from arl.evaluation.verification import VerificationFailed, check_backend, host_evaluate
from arl.git import gitops
from arl.git.gitobjects import pipeline_tree
from arl.history import results
from arl.loop import experiments
from arl.loop.run import OK, data_dir, open_run
from arl.runstate import state


def baseline(lab: str | None) -> int:
    cfg, st = open_run(lab)
    hist = results.read(cfg.results_file)
    tree = pipeline_tree(cfg)  # the committed pipeline, from git objects (never the folder's untracked files)
    why = "baseline: the unmodified pipeline, evaluated by the host"
    if any(r["outcome"] == "baseline" for r in hist.rows):
        b, b_id = results.best_of(cfg, hist.rows)
        held = next((r for r in hist.rows if r["id"] == b_id), None)
        if held is not None and held["commit"] and pipeline_tree(cfg, held["commit"]) == tree:
            # lab.toml or backend.py may have changed since: a backend that cannot load would crash every experiment
            problem = check_backend(cfg, st, tree)
            if problem:
                raise ArlError(f"the backend cannot be loaded in the sandbox: {problem}")
            print(f"baseline already recorded; best so far {b:.6g}" if b is not None else "baseline already recorded")
            return OK
        # The branch holds another pipeline than the best experiment's (changed by hand, a reset, another branch):
        # what a keep must beat is what the branch holds, so it is measured first.
        why = (
            f"baseline: the branch's pipeline is not the tree of the best recorded experiment ({b_id}); "
            "measured again by the host, and keeps are judged against it"
        )
        print(f"the pipeline on the branch differs from experiment {b_id}'s (the best so far): measuring it again")
    st["phase"] = "baseline"
    state.save(cfg, st)
    print(f"baseline: evaluating the pipeline on {data_dir(st)} (up to {cfg.eval_timeout:g} s)...", flush=True)
    try:
        res = host_evaluate(cfg, st, data_dir(st), st["settings"]["repeats"], tree)
    except VerificationFailed as e:
        raise ArlError(f"the unmodified pipeline does not evaluate, so there is no baseline: {e}") from None
    holdout = None
    hidden = st["settings"]["holdout"]
    if hidden:
        try:
            holdout = host_evaluate(cfg, st, Path(hidden), 1, tree).score
        except VerificationFailed:
            pass  # as for every experiment: no holdout score, nothing else lost
    # experiment 0, unless its id is taken (a history begun elsewhere, or lost to a stash: ids are never reused)
    exp_id, sha = gitops.claim_id(cfg, 0 if 0 not in hist.ids() else hist.next_id, tree)
    sha = sha or gitops.snapshot(cfg, exp_id, tree, f"arl: experiment {exp_id} (baseline)\n\nArl-Experiment: {exp_id}")
    attempt = experiments.Attempt(tree, why, res.score, res.score, holdout, metrics=res.metrics)
    row = experiments.row_for(st, exp_id, "baseline", attempt, commit=sha, best=res.score)
    state.record(cfg, st, row)
    experiments.progress(cfg, st, row)
    return OK


def from_args(args: argparse.Namespace) -> int:
    return baseline(args.lab)
