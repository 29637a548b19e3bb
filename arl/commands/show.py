"""`arl show ID`: one experiment, kept or not: its scores, notes, diff and transcript excerpt."""

from __future__ import annotations

import argparse

from arl.config.config import LabConfig
from arl.config.context import open_lab
from arl.errors import ArlError
from arl.git import gitops, repo
from arl.history import results
from arl.util import sh
from arl.util.text import clean


def show(cfg: LabConfig, exp_id: int) -> int:
    rows = [r for r in results.read(cfg.results_file).rows if r["id"] == exp_id]
    if not rows:
        raise ArlError(f"no experiment {exp_id} in {cfg.results_file}")
    r = rows[-1]
    # Notes, the diff of the pipeline and the transcript are the agent's writing: only their newlines survive.
    print(clean(f"experiment {r['id']} (run {r['run']}, {r['time']}): {r['outcome']}"))
    for key in ("score", "verified_score", "holdout_score", "best", "cost_usd"):
        if r[key] is not None:
            print(f"  {key}: {r[key]:.6g}")
    # a row converted from autoresearch-lab has no snapshot of arl's, but may name the commit it made
    commit = r["commit"] or str((r["metrics"] or {}).get("autoresearch_lab_commit") or "") or None
    if r["commit"]:
        print(clean(f"  commit: {r['commit']}   ref: {gitops.ref_name(cfg, exp_id)}"))
    else:
        print(clean(f"  commit: {commit} (autoresearch-lab's; no arl ref)" if commit else "  commit: none (not saved)"))
    if r["notes"]:
        print("notes:\n  " + clean(r["notes"], newlines=True).replace("\n", "\n  "))
    if commit:
        p = repo.rel(cfg, cfg.pipeline_dir)
        code, diff, _ = sh.run(sh.git(repo.top(cfg))["diff", f"{commit}^", commit, "--", p], ok=None, quiet=True)
        shown = "  (not in this repository)" if code != 0 else "  (no change to the pipeline)"
        print("diff:\n" + (clean(diff.rstrip(), newlines=True) or shown))
    excerpt = transcript_excerpt(cfg, exp_id)
    if excerpt:
        print("transcript (excerpt):\n" + clean(excerpt, newlines=True))
    return 0


def transcript_excerpt(cfg: LabConfig, exp_id: int, limit: int = 40) -> str:
    from arl.report import transcript

    agent = next((r.get("agent") for r in results.read(cfg.results_file).rows if r["id"] == exp_id), None)
    return transcript.excerpt(cfg, exp_id, agent or "command", transcript.marks(cfg), limit)


def from_args(args: argparse.Namespace) -> int:
    return show(open_lab(args.lab), args.id)
