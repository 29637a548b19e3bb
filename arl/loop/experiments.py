"""Recording one experiment: its snapshot ref, its results row, the pipeline restored.

Every outcome goes through here, so no path of the loop can forget one of the three."""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from arl.config.config import LabConfig
from arl.git import gitobjects, gitops
from arl.runstate import slots, state
from arl.runstate.runstate import RunState
from arl.sandbox.workspace import sync_worktree, workspace
from arl.util import faults, sh
from arl.util.timing import phase

if TYPE_CHECKING:
    from arl.history.format import Row


def now_iso() -> str:
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class Attempt:
    """What one experiment tried and what was measured of it: its row, before arl gives it an id and a commit."""

    tree: str  # the pipeline's git tree, imported from the workspace
    notes: str = ""
    score: float | None = None  # the agent's claim
    verified: float | None = None  # the host's measurement
    holdout: float | None = None
    cost: float = 0.0
    metrics: dict[str, Any] = field(default_factory=dict)
    slot: int = 0


def row_for(st: RunState, exp_id: int, outcome: str, a: Attempt, commit: str, best: float | None) -> Row:
    settings = st.get("settings")
    return {
        "id": exp_id,
        "run": st.get("run", 0),
        "time": now_iso(),
        "outcome": outcome,
        "score": a.score,
        "verified_score": a.verified,
        "holdout_score": a.holdout,
        "best": best,
        "cost_usd": round(a.cost, 6),
        "commit": commit,
        "agent": settings["agent"] if settings else "",
        "notes": a.notes,
        "metrics": a.metrics,
        "slot": a.slot,
    }


def record_failed(cfg: LabConfig, st: RunState, outcome: str, a: Attempt) -> Row:
    """discard / vetoed / crash / interrupted: save the attempt's tree under its ref, write the row, and restore
    the slot's workspace to the best tree (the newest best, whichever slot set it)."""
    hist = state.history(cfg, st)
    exp_id, sha = gitops.claim_id(cfg, hist["next_id"], a.tree)
    message = f"arl: experiment {exp_id} ({outcome})\n\n{gitops.quote_notes(a.notes)}\n\nArl-Experiment: {exp_id}"
    with phase("git"):
        sha = sha or gitops.snapshot(cfg, exp_id, a.tree, message)
    faults.point("discard:after-snapshot")
    row = row_for(st, exp_id, outcome, a, sha, hist["best"])
    with phase("results"):
        state.record(cfg, st, row)
    faults.point("discard:after-row")
    note_transcript(cfg, st, exp_id, a.slot)
    with phase("restore"):
        restore(cfg, a.slot)
    faults.point("discard:after-restore")
    return row


def salvage(cfg: LabConfig, slot: int = 0) -> tuple[str, str]:
    """(tree, note) of whatever a crashed or interrupted attempt left in the workspace: what can be imported is,
    what cannot is named in the note. Nothing an agent wrote is lost unless git cannot hold it."""
    found = workspace(cfg, slot).import_tree(strict=False)
    tree = found.tree or gitobjects.pipeline_tree(cfg)
    if not found.problems:
        return tree, ""
    more = f" (and {len(found.problems) - 3} more)" if len(found.problems) > 3 else ""
    return tree, "\n[arl] left out of the snapshot: " + "; ".join(found.problems[:3]) + more


def restore(cfg: LabConfig, slot: int = 0) -> None:
    """The workspace back to the best tree (HEAD's pipeline), in place."""
    workspace(cfg, slot).seed(gitobjects.pipeline_tree(cfg))


def record_keep(cfg: LabConfig, st: RunState, a: Attempt) -> tuple[Row, str]:
    """Commit a keep through `git commit` (hooks run). A failing pre-commit hook turns it into `vetoed` (then the
    reason is returned with the row).

    The user's pipeline folder is brought to the kept tree before the commit, so `make guard` sees it."""
    exp_id, sha = gitops.claim_id(cfg, state.history(cfg, st)["next_id"], a.tree)
    settings = st.get("settings")
    agent = settings["agent"] if settings else ""
    message = gitops.keep_message(exp_id, st.get("run", 0), agent, a.score, a.verified, a.notes)
    best_tree = gitobjects.pipeline_tree(cfg)
    with phase("git"):
        sha = sha or gitops.snapshot(cfg, exp_id, a.tree, message)
    faults.point("keep:after-snapshot")
    row = row_for(st, exp_id, "keep", a, sha, a.verified if a.verified is not None else a.score)
    size = cfg.results_file.stat().st_size if cfg.results_file.exists() else 0
    with phase("results"):
        state.record(cfg, st, row)
    faults.point("keep:after-row")
    with phase("git"):
        sync_worktree(cfg, best_tree, a.tree)
    faults.point("keep:after-worktree")
    return _commit_or_veto(cfg, st, row, message, size, best_tree)


def complete_keep(cfg: LabConfig, st: RunState, row: Row) -> None:
    """A keep whose row was written but whose commit never happened (the run died): commit it now."""
    message = gitops.keep_message(
        row["id"] or 0, row["run"] or 0, row["agent"] or "", row["score"], row["verified_score"], row["notes"] or ""
    )
    text = cfg.results_file.read_bytes()
    size = text.rstrip(b"\n").rfind(b"\n") + 1  # where the keep's row starts
    best_tree = gitobjects.pipeline_tree(cfg)
    sync_worktree(cfg, best_tree, gitobjects.pipeline_tree(cfg, row["commit"] or "HEAD"))
    _commit_or_veto(cfg, st, row, message, size, best_tree)


def _commit_or_veto(cfg: LabConfig, st: RunState, row: Row, message: str, size: int, best_tree: str) -> tuple[Row, str]:
    snapshot = row["commit"] or ""
    with phase("git"):
        committed, output = gitops.commit_keep(cfg, snapshot, message)
    faults.point("keep:after-commit")
    note_transcript(cfg, st, row["id"] or 0, int(row.get("slot") or 0))
    if committed:
        return row, ""
    # The hook said no: the row was never committed; replace it by a vetoed one.
    slot = int(row.get("slot") or 0)
    sync_worktree(cfg, gitobjects.pipeline_tree(cfg, snapshot), best_tree)
    with open(cfg.results_file, "rb+") as f:
        f.truncate(size)
    sh.note(f"removed the keep row of experiment {row['id']} from {cfg.results_file.name} (the commit was vetoed)")
    # the guard's own last lines say why; the hook's closing line only says that it failed
    tail = [ln.strip() for ln in output.splitlines() if ln.strip() and "`make guard` failed" not in ln][-5:]
    reason = "the pre-commit hook (make guard) failed: " + (" | ".join(tail) if tail else "no output")
    vetoed: Row = {**row, "outcome": "vetoed", "notes": f"{row['notes']}\n[arl] {reason}".strip()}
    vetoed["best"] = state.history(cfg, st)["best"]  # made again: the file was cut
    state.record(cfg, st, vetoed)
    restore(cfg, slot)
    return vetoed, reason


def note_transcript(cfg: LabConfig, st: RunState, exp_id: int, slot: int = 0) -> None:
    """Remember where this experiment's part of the agent transcript ends, for `arl show`."""
    name = slots.of(st, slot).get("container")
    size = 0
    if name:
        log = state.logs_dir(cfg) / f"{name}.jsonl"
        size = log.stat().st_size if log.exists() else 0
    state.log_event(
        cfg, {"event": "experiment", "id": exp_id, "run": st.get("run"), "container": name, "log_bytes": size}
    )


def progress(cfg: LabConfig, st: RunState, row: Row) -> None:
    elapsed = int(time.time() - st.get("started", time.time()))
    h, rem = divmod(elapsed, 3600)

    def f(v: float | None) -> str:
        return "-" if v is None else f"{v:.6g}"

    shown = row["verified_score"] if row["verified_score"] is not None else row["score"]
    print(
        f"[exp {row['id']:>4}] {row['outcome']:<11} score {f(shown):>10}  best {f(row['best']):>10}  "
        f"elapsed {h}:{rem // 60:02d}:{rem % 60:02d}  cost ${st.get('cost', 0.0):.4f}",
        flush=True,
    )
    if row["outcome"] in ("crash", "vetoed", "interrupted") and row.get("notes"):
        from arl.util.text import clean

        # arl's own reason (the last "[arl] ..." line) when there is one, else what the agent wrote
        lines = [ln for ln in str(row["notes"]).splitlines() if ln.strip()]
        why = next((ln for ln in reversed(lines) if ln.startswith("[arl]")), lines[-1] if lines else "")
        print(f"           why: {clean(why.removeprefix('[arl] '))[:400]}", flush=True)
    from arl.report import live

    with phase("report"):
        live.refresh(cfg)  # the lab's page, .arl/report/index.html; a failure is logged, never raised
