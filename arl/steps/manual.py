"""`arl-step commit` / `arl-step revert`: record the current pipeline by hand, as a keep or a discard.

`decide` uses the same recording functions; these steps are for a person stepping through the loop."""

from __future__ import annotations

import argparse

from .. import experiments, gitops, state
from .common import OK, account_cost, open_run


def commit(lab: str | None, notes: str) -> int:
    cfg, st = open_run(lab)
    if not gitops.pipeline_dirty(cfg):
        print("the pipeline has no changes; nothing to commit")
        return OK
    from .common import data_dir
    from .verify import host_evaluate

    res = host_evaluate(cfg, st, data_dir(st), st["settings"]["repeats"])
    if "error" in res:
        row = experiments.record_failed(cfg, st, "vetoed", f"{notes}\n[arl] {res['error']}".strip())
    else:
        row, _ = experiments.record_keep(
            cfg,
            st,
            notes,
            score=None,
            verified=res["score"],
            holdout=None,
            cost=account_cost(cfg, st),
            metrics=res.get("metrics", {}),
        )
    state.save(cfg, st)
    experiments.progress(cfg, st, row)
    return OK


def revert(lab: str | None, notes: str) -> int:
    cfg, st = open_run(lab)
    if not gitops.pipeline_dirty(cfg):
        print("the pipeline has no changes; nothing to revert")
        return OK
    row = experiments.record_failed(cfg, st, "discard", notes, cost=account_cost(cfg, st))
    state.save(cfg, st)
    experiments.progress(cfg, st, row)
    return OK


def from_args(args: argparse.Namespace) -> int:
    fn = commit if args.step == "commit" else revert
    return fn(args.lab, args.notes)
