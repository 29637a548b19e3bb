"""Reconciling git, the experiment refs, results.tsv and the containers after a run ends: cleanly (teardown),
interrupted (Ctrl-C: teardown), or killed anywhere (the next preflight's repair)."""

from __future__ import annotations

import os
import time
from pathlib import Path

from arl.channel import channel, verdicts
from arl.config.config import LabConfig
from arl.engines.choose import engine_of
from arl.git import gitobjects, gitops
from arl.history import results
from arl.loop import experiments, verifying
from arl.loop.costs import close_container_cost
from arl.loop.decision import process_verdict
from arl.runstate import slots, state
from arl.runstate.runstate import RunState
from arl.sandbox.workspace import sync_worktree, workspace
from arl.util import sh


def repair(cfg: LabConfig, old: RunState) -> None:
    """A run that died: reconcile what it left, then mark it ended."""
    reconcile(cfg, old, "[arl] the run died mid-experiment")
    from arl.broker import process as brokerproc

    brokerproc.stop(cfg)  # its own session: it outlived the run; the next run starts one with current credentials
    old.update(active=False, stop_reason=old.get("stop_reason") or "died (repaired)")
    state.save(cfg, old)
    state.log_event(cfg, {"event": "repaired", "run": old.get("run")})


def reconcile(cfg: LabConfig, old: RunState, why: str) -> None:
    """Leave no container, no half-done keep, no unanswered verdict and no unrecorded attempt behind."""
    # 0. Keeps being verified beside the decider are finished first (their jobs outlive the run), never lost.
    if old.get("settings"):
        verifying.settle(cfg, old)
    # 1. No container of the run survives; its transcript is saved first.
    numbers = slots.numbers(old) if old.get("settings") else [0]
    engine = engine_of(cfg, old)
    known = {slots.of(old, k).get("container") for k in numbers}
    for k in numbers if old.get("settings") else []:
        sl = slots.of(old, k)
        name = sl.get("container")
        if not name:
            continue
        # Stopped before its transcript is read: an agent told to stop (SIGINT) may still report its cost.
        engine.remove(name, grace=3, remove=False)
        try:
            close_container_cost(cfg, old, k)
        except Exception as e:  # a transcript we cannot read must not block the repair
            sh.say(f"  could not save the transcript of {name}: {e}")
        sl["container"] = None  # its cost is closed: counted once
    for name in engine.leftovers():
        if name not in known:  # the run's own agents, stopped above, are no leftovers: removed without a word
            sh.say(f"  removing the leftover container {name}")
        engine.remove(name, grace=1)
    # 1b. A git command killed with the run leaves its lock files; every later git step would fail on them.
    if _remove_stale_git_locks(cfg, old):
        # A commit killed between moving the branch and writing the index leaves an index that lags HEAD.
        gitops.sync_index(cfg)
    rows = results.read(cfg.results_file).rows
    # 2. A keep whose row was written but whose commit never happened: complete it, from its snapshot's tree.
    last = rows[-1] if rows else None
    if last and last["outcome"] == "keep" and _trailer_experiment(cfg) != last["id"] and last["commit"]:
        sh.say(f"  completing the commit of experiment {last['id']} (keep)")
        experiments.complete_keep(cfg, old, last)
    # 2b. The user's pipeline folder is written only around a keep: bring it to HEAD if a keep was cut short.
    rows = results.read(cfg.results_file).rows
    last = rows[-1] if rows else None
    if last and last["outcome"] in ("keep", "vetoed") and last["run"] == old.get("run") and last["commit"]:
        sync_worktree(cfg, gitobjects.pipeline_tree(cfg, last["commit"]), gitobjects.pipeline_tree(cfg))
        gitops.sync_index(cfg)
    for k in numbers:
        _answer_and_salvage(cfg, old, k, why)


def _answer_and_salvage(cfg: LabConfig, old: RunState, slot: int, why: str) -> None:
    # 3. The verdict the dead run never answered is answered now (one: the expected seq; others are rejected).
    control = slots.control_dir(cfg, slot)
    sl = slots.of(old, slot)
    if old.get("settings") and verdicts.pending(control):
        rows = results.read(cfg.results_file).rows
        answered = {
            r["metrics"].get("verdict_seq"): r
            for r in rows
            if r["run"] == old.get("run") and int(r.get("slot") or 0) == slot
        }
        for path in verdicts.pending(control):
            seq = verdicts.tag_of(path.name)
            done = answered.get(int(seq)) if seq.isascii() and seq.isdigit() else None
            if done is not None:
                # Recorded before the crash (steps 2 and 4 finish its git side): only the ack was missing.
                sh.say(f"  verdict {seq} was already recorded as experiment {done['id']}")
                channel.answer(
                    control,
                    seq,
                    {"seq": int(seq), "experiment": done["id"], "outcome": done["outcome"], "reason": "recovered"},
                )
                channel.archive(path, cfg.state_dir / "verdicts")
                sl["seq"] = max(sl.get("seq", 0), int(seq) + 1)
        channel.tidy(control, sl.get("seq", 0), cfg.state_dir / "verdicts")
        expected = control / f"verdict-{sl.get('seq', 0)}.json"
        if os.path.lexists(expected):
            sh.say(f"  processing the unanswered verdict {expected.name}" + (f" of slot {slot}" if slot else ""))
            row = process_verdict(cfg, old, expected, slot)
            if row is not None:
                experiments.progress(cfg, old, row)
    # 4. What the agent left in its workspace is an interrupted experiment, unless it is the best tree or exactly
    # the last recorded attempt of this slot.
    ws = workspace(cfg, slot)
    if ws.restore_cut_short():
        sh.say("  finishing the restore of the workspace that the dead run began")
        experiments.restore(cfg, slot)
    elif ws.exists():
        tree, left_out = experiments.salvage(cfg, slot)
        best = gitobjects.pipeline_tree(cfg)
        rows = [r for r in results.read(cfg.results_file).rows if int(r.get("slot") or 0) == slot]
        last = rows[-1] if rows else None
        if tree == best and not left_out:
            pass
        elif not left_out and tree in _bests_of_run(cfg, old):
            experiments.restore(cfg, slot)  # seeded from a best that moved on since: nothing of the agent's in it
        elif last and last["commit"] and gitobjects.pipeline_tree(cfg, last["commit"]) == tree and not left_out:
            sh.say(f"  experiment {last['id']} was recorded; restoring the workspace it left")
            experiments.restore(cfg, slot)
        else:
            # Whatever the agent had half-written is an `interrupted` experiment: saved, never lost.
            cost = max(sl.get("cost", 0.0) - sl.get("cost_attributed", 0.0), 0.0)
            sl["cost_attributed"] = sl.get("cost", 0.0)
            row = experiments.record_failed(
                cfg, old, "interrupted", experiments.Attempt(tree, why + left_out, cost=cost, slot=slot)
            )
            experiments.progress(cfg, old, row)


def _bests_of_run(cfg: LabConfig, old: RunState) -> set[str]:
    """The pipeline trees this run kept (and its baseline): what a slot's workspace was seeded from."""
    rows = results.read(cfg.results_file).rows
    return {
        gitobjects.pipeline_tree(cfg, r["commit"])
        for r in rows
        if r["outcome"] in ("keep", "baseline") and r["run"] == old.get("run") and r["commit"]
    }


def _trailer_experiment(cfg: LabConfig) -> int | None:
    _, out, _ = sh.run(sh.git(cfg.root)["log", "-1", "--format=%(trailers:key=Arl-Experiment,valueonly)"], quiet=True)
    try:
        return int(out.strip().splitlines()[0])
    except (ValueError, IndexError):
        return None


def _remove_stale_git_locks(cfg: LabConfig, old: RunState) -> bool:
    """Remove the lock files a git command of the dead run left; True if the index's lock was one of them.

    arl's own index files in .arl/ are arl's alone (we hold the run's lock). In the repository's git dir only the
    locks arl's commands take are considered, and only those created while the dead run ran that no live process
    holds open: a git command the user runs at this moment keeps its lock."""
    removed_index = False
    for name in ("keep.index.lock",):
        (cfg.state_dir / name).unlink(missing_ok=True)
    g = sh.git(cfg.root)
    names = ["index.lock", "HEAD.lock", "packed-refs.lock"]
    if old.get("branch"):
        names.append(f"refs/heads/{old['branch']}.lock")
    _, out, _ = sh.run(g[("rev-parse", *[a for n in names for a in ("--git-path", n)])], ok=None, quiet=True)
    candidates = [cfg.root / p for p in out.splitlines() if p.strip()]
    _, common, _ = sh.run(g["rev-parse", "--git-common-dir"], ok=None, quiet=True)
    experiments_dir = cfg.root / common.strip() / gitops.ref_name(cfg, 0).rsplit("/", 1)[0]
    if common.strip() and experiments_dir.is_dir():
        candidates += sorted(experiments_dir.glob("*.lock"))
    since = float(old.get("started") or 0)
    for lock in candidates:
        try:
            made = lock.stat().st_mtime
        except OSError:
            continue
        if made + 1 < since or _held_open(lock):
            continue
        sh.say(f"  removing {lock.name}, left by a git command of the dead run")
        lock.unlink(missing_ok=True)
        removed_index = removed_index or lock.name == "index.lock"
    return removed_index


def _held_open(path: Path) -> bool:
    """Does a live process have this file open? (Linux's /proc; elsewhere a lock younger than 5 s counts.)"""
    proc = Path("/proc")
    if not (proc / "self" / "fd").is_dir():
        try:
            return time.time() - path.stat().st_mtime < 5
        except OSError:
            return False
    target = str(path.resolve())
    for pid in os.listdir(proc):
        if not pid.isdigit():
            continue
        try:
            fds = os.listdir(proc / pid / "fd")
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(proc / pid / "fd" / fd) == target:
                    return True
            except OSError:
                continue
    return False
