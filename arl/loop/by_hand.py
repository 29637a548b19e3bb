"""Experiments no agent proposed: the baseline (the host's measurement of the branch's pipeline, experiment 0) and
a person's keep or discard of a slot's workspace (`arl-step commit` / `revert`).

A person's keep is imported, verified and committed exactly like an agent's (the same recording functions as
`decide`); the slot's agent, if one runs, is frozen meanwhile so nothing changes under the import."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from arl.config.config import LabConfig
from arl.engines.choose import engine_of
from arl.errors import ArlError
from arl.evaluation.verification import VerificationFailed, check_backend, host_evaluate
from arl.git import gitobjects, gitops
from arl.history import results
from arl.loop import experiments
from arl.loop.costs import account_cost
from arl.loop.experiments import Attempt
from arl.loop.run import data_dir
from arl.runstate import slots, state
from arl.runstate.runstate import RunState
from arl.sandbox.workspace import workspace

if TYPE_CHECKING:
    from arl.history.format import Row


def baseline(cfg: LabConfig, st: RunState) -> Row | None:
    """Experiment 0, recorded; None when the branch's pipeline is the best experiment's, already measured (the
    backend is checked to load in the sandbox then: lab.toml or backend.py may have changed since)."""
    hist = results.read(cfg.results_file)
    tree = gitobjects.pipeline_tree(cfg)  # the committed pipeline, from git objects (never untracked files)
    why = "baseline: the unmodified pipeline, evaluated by the host"
    if any(r["outcome"] == "baseline" for r in hist.rows):
        b, b_id = results.best_of(cfg, hist.rows)
        held = next((r for r in hist.rows if r["id"] == b_id), None)
        if held is not None and held["commit"] and gitobjects.pipeline_tree(cfg, held["commit"]) == tree:
            problem = check_backend(cfg, st, tree)  # a backend that cannot load would crash every experiment
            if problem:
                raise ArlError(f"the backend cannot be loaded in the sandbox: {problem}")
            print(f"baseline already recorded; best so far {b:.6g}" if b is not None else "baseline already recorded")
            return None
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
    if st["settings"]["holdout"]:
        try:
            holdout = host_evaluate(cfg, st, Path(st["settings"]["holdout"]), 1, tree).score
        except VerificationFailed:
            pass  # as for every experiment: no holdout score, nothing else lost
    # experiment 0, unless its id is taken (a history begun elsewhere, or lost to a stash: ids are never reused)
    exp_id, sha = gitops.claim_id(cfg, 0 if 0 not in hist.ids() else hist.next_id, tree)
    sha = sha or gitops.snapshot(cfg, exp_id, tree, f"arl: experiment {exp_id} (baseline)\n\nArl-Experiment: {exp_id}")
    attempt = Attempt(tree, why, res.score, res.score, holdout, metrics=res.metrics)
    row = experiments.row_for(st, exp_id, "baseline", attempt, commit=sha, best=res.score)
    state.record(cfg, st, row)
    return row


@contextmanager
def _frozen(cfg: LabConfig, st: RunState, slot: int) -> Iterator[None]:
    name = slots.of(st, slot).get("container")
    frozen = bool(name) and engine_of(cfg, st).freeze(name)
    try:
        yield
    finally:
        if frozen and name:
            engine_of(cfg, st).thaw(name)


def _has_workspace(cfg: LabConfig, slot: int) -> None:
    if not workspace(cfg, slot).exists():
        raise ArlError(f"slot {slot} has no workspace yet: `arl-step launch` creates it from the best commit")


def keep(cfg: LabConfig, st: RunState, notes: str, slot: int = 0, force: bool = False) -> Row | None:
    """The slot's workspace verified and committed as a keep (vetoed if it does not evaluate); None when it holds
    no change. A keep that verifies no better than the best is refused unless `force`."""
    if not st.get("image"):
        raise ArlError("this run has no sandbox image yet (verification runs in it): run `arl-step image` first")
    _has_workspace(cfg, slot)
    with _frozen(cfg, st, slot):
        imported = workspace(cfg, slot).import_tree(strict=True)
        if not imported.ok:
            raise ArlError(f"the workspace cannot be imported: {imported.problems[0]}")
        if imported.tree == gitobjects.pipeline_tree(cfg):
            print("the workspace has no changes; nothing to commit")
            return None
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
            kept = Attempt(imported.tree, notes, verified=res.score, cost=cost, metrics=res.metrics, slot=slot)
            row, _ = experiments.record_keep(cfg, st, kept)
        state.save(cfg, st)
    return row


def discard(cfg: LabConfig, st: RunState, notes: str, slot: int = 0) -> Row | None:
    """The slot's workspace recorded as a discard (its tree under its ref) and restored to the best; None when it
    holds no change."""
    _has_workspace(cfg, slot)
    with _frozen(cfg, st, slot):
        tree, left_out = experiments.salvage(cfg, slot)
        if tree == gitobjects.pipeline_tree(cfg) and not left_out:
            print("the workspace has no changes; nothing to revert")
            return None
        cost = account_cost(cfg, st, slot)
        row = experiments.record_failed(cfg, st, "discard", Attempt(tree, notes + left_out, cost=cost, slot=slot))
        state.save(cfg, st)
    return row
