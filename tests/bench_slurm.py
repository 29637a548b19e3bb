"""`make bench`'s SLURM figures: the per-experiment host overhead with the SLURM engine next to the local one (the
same lab, verify on and off), and the time from `sbatch` to a running agent, on a private single-node SLURM cluster
(tests/slurm_cluster.py). Figures, not tests."""

from __future__ import annotations

import json
import os
import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import bench_labs as L
from .bench_stats import Figure, figure
from .slurm_cluster import missing_daemons, start_cluster

SECTION = "5. engines: local vs SLURM"


def _verdict_ms(lab: Path, run: int, verified: bool) -> list[float]:
    ts = L.verdict_timings(lab, run)
    keep = [t for t in ts if (t["outcome"] in ("keep", "vetoed")) == verified]
    return [t["verdict_to_ack"] * 1000 for t in keep]


def submit_to_running(lab: Path) -> list[float]:
    """Seconds from each slot job's `sbatch` to its container running (the spec's and the runner's clocks)."""
    out = []
    for spec in (lab / ".arl" / "engine").glob("*.json"):
        if spec.name.endswith(".status.json"):
            continue
        status = spec.with_name(spec.name[: -len(".json")] + ".status.json")
        try:
            submitted = json.loads(spec.read_text())["submitted_at"]
            running = json.loads(status.read_text())["running_at"]
        except (OSError, ValueError, KeyError):
            continue
        out.append(running - submitted)
    return out


def engines(scratch: L.Scratch, n: int, say: Callable[[str], None]) -> tuple[list[Figure], dict[str, Any]]:
    if missing_daemons() or os.geteuid() != 0:
        say("SLURM figures skipped: slurm-wlm/munge missing or not root (make slurm installs them)")
        return [figure(SECTION, "skipped: no SLURM here", "ms", [0.0])], {}
    cluster = start_cluster(gpus=4)
    saved = {k: os.environ.get(k) for k in cluster.env}
    os.environ.update(cluster.env)
    raw: dict[str, Any] = {}
    figs: list[Figure] = []
    try:
        for kind in ("local", "slurm"):
            lab = L.knob_lab(scratch, f"engine-{kind}")
            toml = lab / "lab.toml"
            toml.write_text(toml.read_text() + f'\n[engine]\nkind = "{kind}"\n')
            L.commit_all(lab, f"{kind} engine")
            for verify in (False, True):
                say(f"{kind} engine, verify {'on' if verify else 'off'}: {n} experiments")
                wall, run = L.run_loop(lab, n, verify=verify, seed=11)
                got = _verdict_ms(lab, run, verified=verify) or _verdict_ms(lab, run, verified=False)
                what = "verified keeps" if verify else "discards, verify off"
                figs.append(figure(SECTION, f"verdict → ack, {kind}, {what}", "ms", got))
                raw[f"{kind}-verify-{verify}"] = {"wall_s": wall, "verdict_to_ack_ms": got}
            if kind == "slurm":
                waits = submit_to_running(lab)
                f = figure(SECTION, "sbatch → agent's container running", "s", waits)
                f.note = f"{len(waits)} jobs; median {statistics.median(waits):.2f} s" if waits else "no job measured"
                figs.append(f)
                raw["submit_to_running_s"] = waits
    finally:
        cluster.stop()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return figs, raw
