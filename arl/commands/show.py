"""`arl show ID`: one experiment, kept or not: its scores, notes, diff and transcript excerpt."""

from __future__ import annotations

import argparse
import json

from arl.errors import ArlError
from arl.lab import gitops, results, state
from arl.lab.config import LabConfig
from arl.lab.context import open_lab
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
    print(clean(f"  commit: {r['commit']}   ref: {gitops.ref_name(cfg, exp_id)}"))
    if r["notes"]:
        print("notes:\n  " + clean(r["notes"], newlines=True).replace("\n", "\n  "))
    if r["commit"]:
        p = gitops.rel(cfg, cfg.pipeline_dir)
        _, diff, _ = sh.run(
            sh.git(gitops.top(cfg))["diff", f"{r['commit']}^", r["commit"], "--", p], ok=None, quiet=True
        )
        print("diff:\n" + (clean(diff.rstrip(), newlines=True) or "  (no change to the pipeline)"))
    excerpt = transcript_excerpt(cfg, exp_id)
    if excerpt:
        print("transcript (excerpt):\n" + clean(excerpt, newlines=True))
    return 0


def transcript_excerpt(cfg: LabConfig, exp_id: int, limit: int = 40) -> str:
    events = []
    path = cfg.state_dir / "runs.jsonl"
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                events.append(json.loads(line))
            except ValueError:
                continue
    marks = [e for e in events if e.get("event") == "experiment"]
    this = next((e for e in reversed(marks) if e.get("id") == exp_id), None)
    if not this or not this.get("container"):
        return ""
    earlier = [
        e for e in marks if e.get("container") == this["container"] and e.get("log_bytes", 0) < this.get("log_bytes", 0)
    ]
    start = max((e["log_bytes"] for e in earlier), default=0)
    log = state.logs_dir(cfg) / f"{this['container']}.jsonl"
    if not log.exists():
        return ""
    with open(log, "rb") as f:
        f.seek(start)
        chunk = f.read(max(this.get("log_bytes", 0) - start, 0)).decode(errors="replace")
    from arl.loop.costs import readable

    agent = next((r.get("agent") for r in results.read(cfg.results_file).rows if r["id"] == exp_id), None)
    lines = readable(agent or "command", chunk.splitlines())[-limit:]
    return "\n".join("  " + ln for ln in lines)


def from_args(args: argparse.Namespace) -> int:
    return show(open_lab(args.lab), args.id)
