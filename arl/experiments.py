"""Recording one experiment: its snapshot ref, its results row, the pipeline restored.

Every outcome goes through here, so no path of the loop can forget one of the three."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

from . import faults, gitops, results, state
from .config import LabConfig
from .timing import phase


def now_iso() -> str:
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def row_for(
    cfg: LabConfig,
    st: dict[str, Any],
    exp_id: int,
    outcome: str,
    *,
    score: float | None = None,
    verified: float | None = None,
    holdout: float | None = None,
    cost: float = 0.0,
    commit: str = "",
    notes: str = "",
    metrics: dict[str, Any] | None = None,
    best: float | None = None,
) -> dict[str, Any]:
    return {
        "id": exp_id,
        "run": st.get("run", 0),
        "time": now_iso(),
        "outcome": outcome,
        "score": score,
        "verified_score": verified,
        "holdout_score": holdout,
        "best": best,
        "cost_usd": round(cost, 6),
        "commit": commit,
        "agent": st.get("settings", {}).get("agent", ""),
        "notes": notes,
        "metrics": metrics or {},
    }


def record_failed(
    cfg: LabConfig,
    st: dict[str, Any],
    outcome: str,
    notes: str,
    *,
    score: float | None = None,
    verified: float | None = None,
    cost: float = 0.0,
    metrics: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """discard / vetoed / crash / interrupted: save the attempt under its ref, write the row, restore."""
    hist = results.read(cfg.results_file)
    exp_id = hist.next_id
    with phase("git"):
        sha = gitops.snapshot(
            cfg, exp_id, f"arl: experiment {exp_id} ({outcome})\n\n{notes}\n\nArl-Experiment: {exp_id}"
        )
    faults.point("discard:after-snapshot")
    best, _ = results.best_of(cfg, hist.rows)
    row = row_for(
        cfg,
        st,
        exp_id,
        outcome,
        score=score,
        verified=verified,
        cost=cost,
        commit=sha,
        notes=notes,
        metrics=metrics,
        best=best,
    )
    with phase("results"):
        results.append(cfg.results_file, row)
    faults.point("discard:after-row")
    note_transcript(cfg, st, exp_id)
    with phase("git"):
        gitops.restore_pipeline(cfg)
    faults.point("discard:after-restore")
    return row


def record_keep(
    cfg: LabConfig,
    st: dict[str, Any],
    notes: str,
    *,
    score: float | None,
    verified: float | None,
    holdout: float | None,
    cost: float,
    metrics: dict[str, Any],
) -> tuple[dict[str, Any], str]:
    """Commit a keep through `git commit` (hooks run). A failing pre-commit hook turns it into `vetoed`."""
    hist = results.read(cfg.results_file)
    exp_id = hist.next_id
    settings = st.get("settings", {})
    message = gitops.keep_message(exp_id, st.get("run", 0), settings.get("agent", ""), score, verified, notes)
    with phase("git"):
        sha = gitops.snapshot(cfg, exp_id, message)
    faults.point("keep:after-snapshot")
    new_best = verified if verified is not None else score
    row = row_for(
        cfg,
        st,
        exp_id,
        "keep",
        score=score,
        verified=verified,
        holdout=holdout,
        cost=cost,
        commit=sha,
        notes=notes,
        metrics=metrics,
        best=new_best,
    )
    size = cfg.results_file.stat().st_size if cfg.results_file.exists() else 0
    with phase("results"):
        results.append(cfg.results_file, row)
    faults.point("keep:after-row")
    with phase("git"):
        committed, output = gitops.commit_keep(cfg, message)
    faults.point("keep:after-commit")
    note_transcript(cfg, st, exp_id)
    if committed:
        return row, ""
    # The hook said no: the row was never committed; replace it by a vetoed one.
    with open(cfg.results_file, "rb+") as f:
        f.truncate(size)
    reason = "the pre-commit hook (make guard) failed: " + (output.splitlines()[-1] if output else "no output")
    best, _ = results.best_of(cfg, hist.rows)
    row = row_for(
        cfg,
        st,
        exp_id,
        "vetoed",
        score=score,
        verified=verified,
        holdout=holdout,
        cost=cost,
        commit=sha,
        notes=f"{notes}\n[arl] {reason}".strip(),
        metrics=metrics,
        best=best,
    )
    results.append(cfg.results_file, row)
    gitops.restore_pipeline(cfg)
    return row, reason


def note_transcript(cfg: LabConfig, st: dict[str, Any], exp_id: int) -> None:
    """Remember where this experiment's part of the agent transcript ends, for `arl show`."""
    name = st.get("container")
    size = 0
    if name:
        log = state.logs_dir(cfg) / f"{name}.jsonl"
        size = log.stat().st_size if log.exists() else 0
    state.log_event(
        cfg, {"event": "experiment", "id": exp_id, "run": st.get("run"), "container": name, "log_bytes": size}
    )


def progress(cfg: LabConfig, st: dict[str, Any], row: dict[str, Any]) -> None:
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
