"""`arl-step commit` / `arl-step revert`: record the slot's workspace by hand, as a keep or a discard.

A person's keep is imported, verified and committed exactly like an agent's (`decide` uses the same recording
functions); the agent's container, if one runs, is frozen meanwhile so nothing changes under the import."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from contextlib import contextmanager

from arl.config.config import LabConfig
from arl.engines.choose import engine_of
from arl.errors import ArlError
from arl.evaluation.verification import VerificationFailed, host_evaluate
from arl.git import gitobjects
from arl.history import results
from arl.loop import experiments
from arl.loop.costs import account_cost
from arl.loop.experiments import Attempt
from arl.loop.run import OK, data_dir, open_run
from arl.runstate import slots, state
from arl.runstate.runstate import RunState
from arl.sandbox.workspace import workspace


@contextmanager
def _frozen(cfg: LabConfig, st: RunState, slot: int) -> Iterator[None]:
    name = slots.of(st, slot).get("container")
    frozen = bool(name) and engine_of(cfg, st).freeze(name)
    try:
        yield
    finally:
        if frozen and name:
            engine_of(cfg, st).thaw(name)


def commit(lab: str | None, notes: str, slot: int = 0, force: bool = False) -> int:
    cfg, st = open_run(lab)
    if not st.get("image"):
        raise ArlError("this run has no sandbox image yet (verification runs in it): run `arl-step image` first")
    _has_workspace(cfg, slot)
    with _frozen(cfg, st, slot):
        imported = workspace(cfg, slot).import_tree(strict=True)
        if not imported.ok:
            raise ArlError(f"the workspace cannot be imported: {imported.problems[0]}")
        if imported.tree == gitobjects.pipeline_tree(cfg):
            print("the workspace has no changes; nothing to commit")
            return OK
        try:
            res = host_evaluate(cfg, st, data_dir(st), st["settings"]["repeats"], imported.tree, slot)
        except VerificationFailed as e:
            res, failure = None, str(e)
        best = results.best_of(cfg, results.read(cfg.results_file).rows)[0]
        worse = res is not None and best is not None and not cfg.better(res.score, best)
        if res is not None and worse and not force:
            raise ArlError(
                f"the workspace verifies at {res.score:.6g}, not better than the best {best:.6g}: nothing was "
                "recorded; pass --force to commit it anyway (the branch's head is then worse than the best score)"
            )
        if res is not None and worse:
            print(f"arl: warning: committing a regression by hand ({res.score:.6g}, best was {best:.6g})")
        if res is None:
            why = f"{notes}\n[arl] {failure}".strip()
            row = experiments.record_failed(cfg, st, "vetoed", Attempt(imported.tree, why, slot=slot))
        else:
            cost = account_cost(cfg, st, slot)
            keep = Attempt(imported.tree, notes, verified=res.score, cost=cost, metrics=res.metrics, slot=slot)
            row, _ = experiments.record_keep(cfg, st, keep)
        state.save(cfg, st)
    experiments.progress(cfg, st, row)
    return OK


def _has_workspace(cfg: LabConfig, slot: int) -> None:
    if not workspace(cfg, slot).exists():
        raise ArlError(f"slot {slot} has no workspace yet: `arl-step launch` creates it from the best commit")


def revert(lab: str | None, notes: str, slot: int = 0) -> int:
    cfg, st = open_run(lab)
    _has_workspace(cfg, slot)
    with _frozen(cfg, st, slot):
        tree, left_out = experiments.salvage(cfg, slot)
        if tree == gitobjects.pipeline_tree(cfg) and not left_out:
            print("the workspace has no changes; nothing to revert")
            return OK
        cost = account_cost(cfg, st, slot)
        row = experiments.record_failed(cfg, st, "discard", Attempt(tree, notes + left_out, cost=cost, slot=slot))
        state.save(cfg, st)
    experiments.progress(cfg, st, row)
    return OK


def from_args(args: argparse.Namespace) -> int:
    slot = getattr(args, "slot", 0) or 0
    if args.step == "commit":
        return commit(args.lab, args.notes, slot, force=bool(getattr(args, "force", False)))
    return revert(args.lab, args.notes, slot)
