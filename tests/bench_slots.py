"""Parallel agents, measured (`python -m tests.bench_slots`, and a table of `make bench`): a think-time agent (it
waits T seconds per experiment, like an LLM, then evaluates and proposes) on the example lab with 1, 2, 4 and 8 slots.

Throughput is taken between the first and the last decision of each run (runs.jsonl's timing events), so image
checks, the baseline and the teardown do not dilute it. The decider's own time per verdict is the sum of the host's
phases after detection (freeze, import, verify, git, restore, results, ack, unfreeze). Figures, not assertions."""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
THINK_S = 2.0
EVAL_S = 1.0  # the keeps table's evaluation time
SLOTS = (1, 2, 4, 8)
KEEP_SLOTS = (1, 2, 4, 6, 8)
DECIDER = ("freeze", "import", "verify", "git", "restore", "results", "ack", "unfreeze")


def _lab(slots: int, keeps: bool = False) -> Path:
    top = Path(tempfile.mkdtemp(prefix=f"arl-bench-slots{slots}-"))
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    setup = [
        ["git", "init", "-q", "-b", "main"],
        ["git", "config", "user.email", "b@e"],
        ["git", "config", "user.name", "bench"],
        [str(BIN / "arl"), "init", "--example", "curve-fit"],
    ]
    for cmd in setup:
        subprocess.run(cmd, cwd=top, check=True, capture_output=True, env=env)
    # Each experiment: think, change a constant (a different value per slot and attempt), evaluate, discard it (most
    # experiments of a night are discards; a keep adds the host's verification, measured by the main table).
    verdict = "keep" if keeps else "discard"
    agent = (
        f"n=0; while :; do n=$((n+1)); sleep {THINK_S}; "
        'sed -i "s/^SLOPE = .*/SLOPE = 0.00$ARL_SLOT$n/" model.py; arl eval >/dev/null; '
        f'arl verdict {verdict} --notes "slot $ARL_SLOT try $n" >/dev/null; done'
    )
    if keeps:  # an evaluation of EVAL_S: the run phase sleeps its share per sample (8 samples)
        backend = (top / "backend.py").read_text()
        head = "    def predict(self, pipeline_dir: Path, inputs: dict) -> list[float]:\n"
        (top / "backend.py").write_text(
            backend.replace(head, f"{head}        __import__('time').sleep({EVAL_S / 8})\n")
        )
    text = (top / "lab.toml").read_text()
    text += f"\n[run]\nagents = {slots}\n" if "[run]" not in text else ""
    text = text.replace("[run]\n", f"[run]\nagents = {slots}\n", 1) if "agents =" not in text else text
    text = text.replace("[agent]\n", f"[agent]\ncommand = {json.dumps(['sh', '-c', agent])}\n", 1)
    (top / "lab.toml").write_text(text)
    subprocess.run(["git", "add", "-A"], cwd=top, check=True, capture_output=True)
    subprocess.run(["git", "commit", "-qm", "bench lab"], cwd=top, check=True, capture_output=True)
    return top


def one(slots: int, per_slot: int = 6, keeps: bool = False) -> dict[str, Any]:
    lab = _lab(slots, keeps)
    env = {**os.environ, "ARL_QUIET": "1", "ARL_BASE_FROM": os.environ.get("ARL_BASE_FROM", "debootstrap")}
    n = slots * per_slot
    argv = [str(BIN / "arl"), "run", "--data", "data", "--agent", "command", "--max-iterations", str(n),
            "--plateau-threshold", "0", "--iteration-timeout", "120"]  # fmt: skip
    try:
        proc = subprocess.run(argv, cwd=lab, capture_output=True, text=True, env=env, timeout=900)
        if proc.returncode != 0:
            raise RuntimeError(f"{slots} slots: arl run exited {proc.returncode}: {proc.stderr[-500:]}")
        events = [json.loads(ln) for ln in (lab / ".arl" / "runs.jsonl").read_text().splitlines()]
        timings = [e for e in events if e.get("event") == "timing" and "verdict_to_ack" in e]
        span = timings[-1]["time"] - timings[0]["time"]
        decider = [sum(float(t.get(k, 0.0)) for k in DECIDER) * 1000 for t in timings]
        return {
            "slots": slots,
            "experiments": len(timings),
            "per_hour": (len(timings) - 1) / span * 3600 if span > 0 else 0.0,
            "decider_ms": statistics.median(decider),
        }
    finally:
        subprocess.run(["docker", "rm", "-f", *_containers(lab)], capture_output=True)
        shutil.rmtree(lab, ignore_errors=True)


def _containers(lab: Path) -> list[str]:
    out = subprocess.run(["docker", "ps", "-aq", "--filter", f"label=arl.root={lab}"], capture_output=True, text=True)
    return out.stdout.split()


def slots_table(say: Any = print, keeps: bool = False) -> tuple[list[str], list[list[str]], list[dict[str, Any]]]:
    """Discards (no verification) or, with `keeps`, every proposal a keep the host verifies (EVAL_S each)."""
    figures = []
    for n in KEEP_SLOTS if keeps else SLOTS:
        t0 = time.monotonic()
        figures.append(one(n, keeps=keeps))
        say(f"{n} slots: {figures[-1]['per_hour']:.0f} experiments/h ({time.monotonic() - t0:.0f} s)")
    base = figures[0]
    head = ["slots", "experiments/h", "speed-up", "decider ms/verdict (median)", "vs 1 slot"]
    body = [
        [
            str(f["slots"]),
            f"{f['per_hour']:.0f}",
            f"{f['per_hour'] / base['per_hour']:.2f}x",
            f"{f['decider_ms']:.0f}",
            f"{f['decider_ms'] / base['decider_ms']:.2f}x",
        ]
        for f in figures
    ]
    return head, body, figures


if __name__ == "__main__":
    for keeps in (True,) if "--keeps-only" in sys.argv else (False, True):
        head, body, _ = slots_table(lambda m: print(m, file=sys.stderr, flush=True), keeps=keeps)
        what = f"keeps, each verified (evaluation {EVAL_S:g} s)" if keeps else "discards"
        print(f"think-time agent, T = {THINK_S:g} s per experiment, {what}, example lab")
        print("| " + " | ".join(head) + " |")
        print("|" + "---|" * len(head))
        for row in body:
            print("| " + " | ".join(row) + " |")
