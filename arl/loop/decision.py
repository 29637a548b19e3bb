"""Answering a verdict: freeze the agent's container, check the claim, verify a keep on the host, commit or revert,
write the ack, thaw (or leave it frozen when the run is over)."""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from arl.channel import channel, verdicts
from arl.channel.channel import Ack
from arl.config.config import LabConfig
from arl.engines.choose import engine_of
from arl.evaluation.verification import Verification, VerificationFailed, host_evaluate
from arl.history import results
from arl.loop import experiments, verifying
from arl.loop.costs import account_cost, budget_guard
from arl.loop.experiments import Attempt
from arl.loop.launching import write_results_view
from arl.loop.run import OK, data_dir, open_run, stop_reason
from arl.report import events
from arl.runstate import slots, state
from arl.runstate.runstate import RunState
from arl.sandbox.workspace import workspace
from arl.util import faults, timing
from arl.util.text import clean

if TYPE_CHECKING:
    from arl.history.format import Row


class Judgement(NamedTuple):
    """The host's answer to a proposed keep."""

    accepted: bool
    score: float | None  # the score that counts: the host's when it verifies, else the agent's
    reason: str  # why it was vetoed ("" when accepted)
    verification: Verification | None  # None when verification is off or failed


Measured = Verification | VerificationFailed  # what a verification beside the decider came back with


def judge_keep(
    cfg: LabConfig, st: RunState, v: verdicts.Verdict, tree: str, slot: int = 0, measured: Measured | None = None
) -> Judgement:
    """The keep judged against the best as it is now; `measured`: its verification, run beside the decider."""
    s = st["settings"]
    best, _ = results.best_of(cfg, results.read(cfg.results_file).rows)
    if not s["verify"]:
        if v.score is None:
            return Judgement(False, None, "no score in the verdict (run `arl eval` before `arl verdict`)", None)
        ok = cfg.better(v.score, best, s["min_improvement"])
        return Judgement(ok, v.score, "" if ok else f"score {v.score:.6g} does not beat the best {best:.6g}", None)
    try:
        if isinstance(measured, VerificationFailed):
            raise measured
        with timing.phase("verify"):
            res = measured or host_evaluate(cfg, st, data_dir(st), s["repeats"], tree, slot)
    except VerificationFailed as e:
        return Judgement(False, None, str(e), None)
    margin = s["min_improvement"]
    if s["repeats"] > 1:
        margin = max(margin, res.spread)  # noise-aware: the gain must exceed the measured spread too
    if cfg.better(res.score, best, margin):
        return Judgement(True, res.score, "", res)
    reason = (
        f"the host measured {res.score:.6g} (you reported {v.score if v.score is not None else 'nothing'}); "
        f"the best is {best:.6g} and a keep must beat it by more than {margin:.3g}{res.failed_note()}"
    )
    return Judgement(False, res.score, reason, res)


STARTED: Row = {}  # type: ignore[typeddict-item]  # process_verdict's answer when a verification began beside it


def process_verdict(cfg: LabConfig, st: RunState, path: Any, slot: int = 0, beside: bool = False) -> Row | None:
    """Handle one verdict file of the slot; returns the results row, or None when the verdict was rejected, or
    STARTED when (`beside`) its keep's verification began in a job of its own: the job's end brings it back here."""
    control = slots.control_dir(cfg, slot)
    sl = slots.of(st, slot)
    v = verdicts.read(path, sl["seq"])
    tree = ""
    measured: Measured | None = None
    holdout: float | None = None
    earlier_cost = 0.0  # the cost counted when the verification began
    job = sl.get("verifying")
    if job and isinstance(v, verdicts.Verdict):
        tree, earlier_cost = job["tree"], job.get("cost", 0.0)  # imported when the job began; the agent stayed frozen
        verifying.wait_for(cfg, st, slot, cfg.eval_timeout * (st["settings"]["repeats"] + 2) + 120)
        measured, holdout = verifying.take(cfg, st, slot)
        if isinstance(measured, VerificationFailed) and "without a result" in str(measured):
            measured = None  # the job died (a run killed with it): verify here and now instead
    elif isinstance(v, verdicts.Verdict):
        # The workspace is imported as data: the host never runs git, or anything that reads config, inside it.
        with timing.phase("import"):
            imported = workspace(cfg, slot).import_tree(strict=True)
        tree = imported.tree
        if not imported.ok:
            v = verdicts.Rejected(str(v.seq), f"the workspace cannot be imported: {imported.problems[0]}")
        elif v.action == "keep" and v.tree != tree:
            v = verdicts.Rejected(
                str(v.seq),
                "the pipeline changed after the `arl eval` this verdict reports (or no "
                "`arl eval` ran): run `arl eval` again, then `arl verdict`",
            )
    if isinstance(v, verdicts.Rejected):
        channel.answer(control, v.tag, {"outcome": "rejected", "reason": v.reason, "seq": v.tag})
        channel.archive(path, cfg.state_dir / "verdicts")
        print(f"[verdict {v.tag}] rejected: {clean(v.reason)}", flush=True)
        return None
    # Journal first: a run killed from here on is repaired by the next preflight.
    st.update(phase="deciding")
    sl["deciding"] = v.seq
    state.save(cfg, st)
    faults.point("decide:after-journal")
    cost = account_cost(cfg, st, slot)
    notes = v.notes
    cost += earlier_cost
    if v.action == "keep" and beside and st["settings"]["verify"] and measured is None:
        if len(verifying.running(st)) < verifying.cap(cfg, st):
            verifying.start(cfg, st, slot, v.seq, tree, cost)
            state.save(cfg, st)
            return STARTED
    if v.action == "keep":
        ok, counted, reason, res = judge_keep(cfg, st, v, tree, slot, measured)
        faults.point("decide:after-verify")
        # The verdict's seq rides in the row, so a repair can tell an answered verdict from a new one.
        metrics = {**((res and res.metrics) or v.metrics), "verdict_seq": v.seq}
        if res and len(res.scores) > 1:
            metrics = {**metrics, "verify_scores": res.scores, "verify_spread": res.spread}
        verified = counted if st["settings"]["verify"] else None
        attempt = Attempt(tree, notes, v.score, verified, cost=cost, metrics=metrics, slot=slot)
        if ok:
            attempt = dataclasses.replace(attempt, holdout=holdout if measured else _holdout(cfg, st, tree, slot))
            row, reason = experiments.record_keep(cfg, st, attempt)
        else:
            attempt = dataclasses.replace(attempt, notes=f"{notes}\n[arl] {reason}".strip())
            row = experiments.record_failed(cfg, st, "vetoed", attempt)
    else:
        metrics = {**v.metrics, "verdict_seq": v.seq}
        row = experiments.record_failed(
            cfg, st, "discard", Attempt(tree, notes, v.score, cost=cost, metrics=metrics, slot=slot)
        )
        reason = ""
    rows = results.read(cfg.results_file).rows
    best, best_id = results.best_of(cfg, rows)
    ack: Ack = {
        "seq": v.seq,
        "experiment": row["id"],
        "outcome": row["outcome"],
        "score": row["score"],
        "verified_score": row["verified_score"],
        "best": best,
        "reason": reason,
    }
    if slots.count(st) > 1:  # the best may have moved under this slot: which experiment holds it, and why
        holder = next((r for r in rows if r["id"] == best_id), None)
        ack.update(best_experiment=best_id, best_notes=str(holder["notes"] or "")[:500] if holder else "")
    with timing.phase("ack"):
        channel.answer(control, v.seq, ack)
    faults.point("decide:after-ack")
    channel.archive(path, cfg.state_dir / "verdicts")
    # A verdict is progress: the outage, idle-session and crash counters start over.
    for key in ("outage_since", "outage_attempts", "idle_ends", "last_end"):
        sl.pop(key, None)
    sl.update(
        verdicts_since_launch=sl.get("verdicts_since_launch", 0) + 1,
        seq=v.seq + 1,
        restarts=0,
        last_progress=time.time(),
        deciding=None,
    )
    st.update(iterations=st.get("iterations", 0) + 1, phase="running")
    channel.write_control(control / "expected.json", {"seq": sl["seq"]})
    return row


def _holdout(cfg: LabConfig, st: RunState, tree: str, slot: int) -> float | None:
    h = st["settings"].get("holdout")
    if not h:
        return None
    try:
        return host_evaluate(cfg, st, Path(h), 1, tree, slot).score
    except VerificationFailed:
        return None  # a holdout that does not evaluate hides nothing and decides nothing


def decide(lab: str | None, slot: int | None = None) -> int:
    """One verdict: the slot's (default: the one `wait` found, else the oldest pending). Only that slot's container
    is frozen meanwhile; the others go on working."""
    cfg, st = open_run(lab)
    if slot is None:
        ready = st.get("ready") or {}
        slot = int(ready.get("slot", 0)) if ready.get("why") in ("verdict", "verified") else oldest_pending(cfg, st)
    sl = slots.of(st, slot)
    name = sl.get("container")
    timing.take()
    with timing.phase("freeze"):
        # no edit can race the commit; a slot whose keep was being verified has stayed frozen since its verdict
        frozen = bool(name) and (bool(sl.get("verifying")) or engine_of(cfg, st).freeze(name))
    faults.point("decide:after-pause")
    events.record(cfg, st, slot, "freeze")
    control = slots.control_dir(cfg, slot)
    # One verdict per decision: the expected seq only, so that the stop rule runs after every experiment.
    expected = control / f"verdict-{sl['seq']}.json"
    channel.tidy(control, sl["seq"], cfg.state_dir / "verdicts")
    if os.path.lexists(expected):
        landed = _mtime(expected)
        events.record(cfg, st, slot, "verdict", landed)
        with budget_guard(cfg, st, f"the decision of slot {slot}'s verdict"):  # the other agents go on spending
            row = process_verdict(cfg, st, expected, slot, beside=verifying.parallel(cfg, st))
        st.pop("ready", None)
        state.save(cfg, st)
        if row is STARTED:
            return OK  # the slot stays frozen until its verification is recorded
        if row is not None:
            experiments.progress(cfg, st, row)
            timing.current["detect"] = max(sl.get("detected_at", landed) - landed, 0.0)
            timing.current["verdict_to_ack"] = max(_mtime(control / f"ack-{row_seq(row)}.json") - landed, 0.0)
    with timing.phase("results"):
        write_results_view(cfg)
    # When the run is over, leave the agent frozen: it cannot start an edit that teardown would interrupt.
    with timing.phase("unfreeze"):
        if frozen and name and stop_reason(cfg, st) is None:
            events.record(cfg, st, slot, "thaw")
            engine_of(cfg, st).thaw(name)
    state.log_event(cfg, {"event": "timing", "run": st["run"], **timing.take()})
    return OK


def oldest_pending(cfg: LabConfig, st: RunState) -> int:
    """The slot whose expected verdict landed first (0 when none is pending)."""
    landed = []
    for k in slots.numbers(st):
        path = slots.control_dir(cfg, k) / f"verdict-{slots.of(st, k).get('seq', 0)}.json"
        if os.path.lexists(path):
            landed.append((_mtime(path), k))
    return min(landed)[1] if landed else 0


def _mtime(path: Any) -> float:
    try:
        return os.stat(path).st_mtime
    except OSError:
        return 0.0


def row_seq(row: Row) -> Any:
    return row.get("metrics", {}).get("verdict_seq")
