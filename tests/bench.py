"""`make bench` (`python -m tests.bench`): arl's performance figures on this machine, as one table.

Host overhead per experiment (verdict file landed -> ack landed, by phase), its growth with a long history,
throughput on the example lab, and CLI latencies. Every loop runs the real engine with the offline agent and
ARL_QUIET=1. The table is printed and written as JSON to bench-results/bench.json. Figures, not tests: nothing
here asserts a timing."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from . import bench_labs as L
from .bench_report import report_refresh
from .bench_startup import startup
from .bench_stats import Figure, as_json, describe, figure, machine, table

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench-results" / "bench.json"
PHASES = ("detect", "freeze", "import", "verify", "git", "restore", "results", "ack", "other", "unfreeze")
OVERHEAD_GOAL_MS = 150.0


def say(msg: str) -> None:
    print(f"bench: {msg}", file=sys.stderr, flush=True)


def ms(timings: list[dict[str, Any]], key: str) -> list[float]:
    return [t.get(key, 0.0) * 1000 for t in timings]


def with_other(t: dict[str, Any]) -> dict[str, Any]:
    """What verdict -> ack holds beyond the named phases (state saves, reading the history, transcript sync)."""
    named = sum(t.get(k, 0.0) for k in ("detect", "freeze", "import", "verify", "git", "restore", "results", "ack"))
    return {**t, "other": max(t["verdict_to_ack"] - named, 0.0)}


def breakdown(section: str, timings: list[dict[str, Any]], phases: tuple[str, ...] = PHASES) -> list[Figure]:
    out = []
    for p in phases:
        note = "after the ack (not in verdict → ack)" if p == "unfreeze" else ""
        if p == "other":
            note = "state saves, history reads, transcript sync"
        out.append(figure(section, f"  {p}", "ms", ms(timings, p), note=note))
    return out


def overhead_and_growth(scratch: L.Scratch, n: int, rounds: int, history: int) -> tuple[list[Figure], dict]:
    """Item 1 (verify off) and item 2: a fresh lab and a lab with `history` prior experiments, the same seeds, so
    both decide the same proposals the same way; rounds alternate between the two labs."""
    fresh, old = L.knob_lab(scratch, "overhead"), L.knob_lab(scratch, "history")
    say(f"seeding {history} prior experiments (results rows + refs)")
    t0 = time.perf_counter()
    L.seed_history(old, history)
    seed_s = time.perf_counter() - t0
    got: dict[str, list[dict[str, Any]]] = {"fresh": [], "old": []}
    for r in range(rounds):
        for key, lab in (("fresh", fresh), ("old", old)):
            say(f"overhead, verify off, {key} lab: {n} experiments (round {r + 1}/{rounds})")
            _, run = L.run_loop(lab, n, verify=False, seed=11 + r)
            got[key] += [with_other(t) for t in L.verdict_timings(lab, run)]
    sec = "1. host overhead, verify off"
    f, o = got["fresh"], got["old"]
    keeps, others = [t for t in f if t["outcome"] == "keep"], [t for t in f if t["outcome"] != "keep"]
    figs = [
        figure(sec, "verdict → ack, all outcomes", "ms", ms(f, "verdict_to_ack"), goal="≤ 150 ms"),
        figure(sec, "  keeps (git commit, hooks run)", "ms", ms(keeps, "verdict_to_ack")),
        figure(sec, "  discards (snapshot + restore)", "ms", ms(others, "verdict_to_ack")),
    ]
    figs[0].met = figs[0].median <= OVERHEAD_GOAL_MS
    figs += breakdown(sec, f, tuple(p for p in PHASES if p != "verify"))
    sec2 = "2. growth with history"
    ids = lambda ts: f"experiments {min(t['id'] for t in ts)}–{max(t['id'] for t in ts)}" if ts else ""  # noqa: E731
    g = [
        figure(sec2, "verdict → ack, fresh lab", "ms", ms(f, "verdict_to_ack"), note=ids(f)),
        figure(sec2, f"verdict → ack, after {history} experiments", "ms", ms(o, "verdict_to_ack"), note=ids(o)),
    ]
    # Experiment k of the fresh lab and 1000 + k of the other made the same proposal with the same outcome.
    same = [t["outcome"] for t in f] == [t["outcome"] for t in o]
    pairs = [b["verdict_to_ack"] / a["verdict_to_ack"] for a, b in zip(f, o) if a["verdict_to_ack"] > 0]
    ratio = figure(sec2, "ratio after / fresh, experiment by experiment", "x", pairs, goal="≤ 1.2")
    ratio.met = ratio.median <= 1.2
    ratio.note = (
        f"{'same' if same else 'DIFFERENT'} proposals and outcomes; ratio of the medians "
        f"{g[1].median / g[0].median:.2f}; history seeded in {seed_s:.1f} s"
    )
    g.append(ratio)
    for p in ("results", "git", "other"):
        a = figure("", "", "ms", ms(f, p)).median
        g.append(figure(sec2, f"  {p}, after {history}", "ms", ms(o, p), note=f"fresh lab: median {a:.1f} ms"))
    raw = {"fresh": f, "after_history": o}
    return figs + g, raw


def overhead_verify_on(scratch: L.Scratch, n: int, split: bool = False) -> tuple[list[Figure], dict]:
    """A verified keep's host overhead; `split`: the same lab with a SplitBackend (prepare once per run, then a run
    container and a score container per keep) instead of a single-phase one (one container per keep)."""
    lab = L.knob_lab(scratch, "verify-split" if split else "verify", L.SPLIT_KNOB_BACKEND if split else L.KNOB_BACKEND)
    evals = []
    for _ in range(5):
        out = L.sh(L.arl("eval", "--data", "data", "--json"), cwd=lab)
        evals.append(json.loads(out.strip().splitlines()[-1])["seconds"])
    eval_ms = figure("", "", "ms", evals, scale=1000).median
    say(f"overhead, verify on: {n} experiments")
    _, run = L.run_loop(lab, n, verify=True, seed=11)
    ts = [with_other(t) for t in L.verdict_timings(lab, run)]
    verified = [t for t in ts if t["outcome"] in ("keep", "vetoed")]
    sec = "1. host overhead, verify on" + (", split backend" if split else ", single-phase backend")
    goal = 1000 + eval_ms
    head = figure(sec, "verdict → ack, verified (keep/vetoed)", "ms", ms(verified, "verdict_to_ack"))
    head.goal, head.met = f"≤ eval + 1 s = {goal:.0f} ms", head.median <= goal
    head.note = f"evaluation itself: {eval_ms:.1f} ms (arl eval, median of 5)"
    figs = [
        head,
        figure(sec, "  discards (not verified)", "ms", ms([t for t in ts if t not in verified], "verdict_to_ack")),
    ]
    figs += breakdown(sec, verified)
    return figs, {"timings": ts, "eval_ms": evals}


def make_research(scratch: L.Scratch, n: int) -> tuple[list[Figure], dict]:
    """The same loop as `make research` runs it: the lab's Makefile, one `arl-step next` per experiment."""
    lab = L.knob_lab(scratch, "make")
    say(f"overhead through `make research` (one arl-step next per experiment): {n} experiments")
    wall, run = L.run_loop(lab, n, verify=False, seed=11, make=True)
    ts = [with_other(t) for t in L.verdict_timings(lab, run)]
    sec = "1. host overhead, verify off"
    f = figure(sec, "verdict → ack via `make research`", "ms", ms(ts, "verdict_to_ack"), goal="≤ 150 ms")
    f.met, f.note = f.median <= OVERHEAD_GOAL_MS, "one `arl-step next` process per experiment (wait, decide, stop rule)"
    return [f], {"timings": ts, "wall_s": wall}


def throughput(scratch: L.Scratch, n: int, rounds: int) -> tuple[list[Figure], dict]:
    e2e, steady, crashes, walls, rebuilt = [], [], 0, [], 0
    for r in range(rounds):
        before = image_id()
        lab = L.example_lab(scratch, f"throughput{r + 1}")
        say(f"throughput on the example lab, verify off: {n} experiments (round {r + 1}/{rounds})")
        wall, run = L.run_loop(lab, n, verify=False, seed=21 + r)
        done = L.outcomes(lab, run)
        crashes += sum(1 for o in done.values() if o == "crash")
        exps = [e["time"] for e in L.events(lab, "experiment", run)]
        count = len([i for i in done if i > 0])
        e2e.append(count / wall * 3600)
        steady.append((len(exps) - 1) / (exps[-1] - exps[0]) * 3600 if len(exps) > 1 else float("nan"))
        walls.append(wall)
        rebuilt += image_id() != before
    sec = "3. throughput (example lab)"
    a = figure(sec, f"experiments/h, whole `arl run` of {n}", "/h", e2e, goal="≥ 1,000/h")
    a.met = a.median >= 1000
    a.note = f"start-up, baseline and teardown included; {crashes} crash(es)"
    if rebuilt:
        a.note += f"; the image was rebuilt in {rebuilt} run(s) (arl's code changed meanwhile)"
    b = figure(sec, "experiments/h, steady state", "/h", steady, note="first to last experiment")
    return [a, b], {"e2e_per_h": e2e, "steady_per_h": steady, "wall_s": walls, "crashes": crashes}


def cli(scratch: L.Scratch, reps: int, rows: int) -> tuple[list[Figure], dict]:
    lab = L.knob_lab(scratch, "cli", backend=L.NOOP_BACKEND)
    sec = "5. CLI latency"
    say("CLI latency")

    def rep(cmd: list[str], k: int = reps, ok: tuple[int, ...] = (0,)) -> list[float]:
        L.timed(cmd, lab, ok=ok)  # warm the page cache and .pyc files first
        return [L.timed(cmd, lab, ok=ok) * 1000 for _ in range(k)]

    def should_stop_ms() -> list[float]:
        L.sh(L.step("preflight", "--data", "data", "--agent", "offline", "--plateau-threshold", "0"), cwd=lab)
        try:
            return rep(L.step("should-stop"), ok=(3,))
        finally:
            L.sh(L.step("teardown"), cwd=lab)

    # `arl --help`, `arl eval`, `arl results` are in the start-up table, with their ratios to the interpreter's start
    raw: dict[str, list[float]] = {}
    raw["arl-step --help"] = rep(L.step("--help"))
    raw["arl-step should-stop (empty history)"] = should_stop_ms()
    say(f"seeding {rows} results rows")
    L.seed_history(lab, rows, refs=False)
    raw[f"arl-step should-stop, {rows} rows"] = should_stop_ms()
    figs = [figure(sec, k, "ms", v) for k, v in raw.items()]
    for f in figs:
        if f.name == "arl-step should-stop (empty history)":
            f.goal, f.met = "start-up ≤ 150 ms", f.median <= OVERHEAD_GOAL_MS
            f.note = "the lab's Makefile starts one step process per experiment (`arl-step next`)"
    return figs, raw


def image_id() -> str:
    cmd = ["docker", "image", "inspect", "--format", "{{.Id}}", "arl-agent-base:latest"]
    return subprocess.run(cmd, capture_output=True, text=True).stdout.strip()


def image_setup() -> tuple[Figure, str]:
    before = image_id()
    say("sandbox image: arl image --base-from debootstrap (builds only when missing or stale)")
    t = L.timed(L.arl("image", "--base-from", "debootstrap"), ROOT, timeout=1800)
    state = "current, nothing built" if before and before == image_id() else "built"
    f = figure("0. set-up", "arl image --base-from debootstrap", "s", [t], note=state)
    return f, state


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.bench", description="arl's performance figures on this machine")
    p.add_argument("--experiments", type=int, default=25, help="experiments per overhead run (default 25)")
    p.add_argument("--rounds", type=int, default=2, help="rounds of fresh vs long-history runs (default 2)")
    p.add_argument("--verify-experiments", type=int, default=30)
    p.add_argument("--history", type=int, default=1000, help="prior experiments of the growth lab (default 1000)")
    p.add_argument("--throughput-experiments", type=int, default=40)
    p.add_argument("--throughput-rounds", type=int, default=3)
    p.add_argument("--cli-reps", type=int, default=15)
    p.add_argument("--results-rows", type=int, default=10000)
    p.add_argument("--startup-reps", type=int, default=21, help="runs of each start-up command (default 21)")
    p.add_argument("--quick", action="store_true", help="a smoke run: few experiments, few repetitions")
    p.add_argument("--startup-only", action="store_true", help="only the start-up table: no Docker, a minute or so")
    p.add_argument("--keep", action="store_true", help="keep the scratch labs (their path is printed)")
    p.add_argument("--no-slots", action="store_true", help="skip the parallel-agents table (about 2 minutes)")
    p.add_argument("--no-slurm", action="store_true", help="skip the SLURM engine's figures (about 2 minutes)")
    p.add_argument("-o", "--output", type=Path, default=OUT)
    a = p.parse_args(argv)
    if a.quick:
        a.experiments, a.rounds, a.verify_experiments, a.throughput_experiments = 6, 1, 6, 8
        a.throughput_rounds, a.cli_reps, a.history, a.results_rows, a.startup_reps = 1, 5, 100, 1000, 5
    if a.startup_only and a.output == OUT:
        a.output = OUT.with_name("startup.json")
    start = time.perf_counter()
    info = machine()
    info["load_start"] = [round(x, 2) for x in os.getloadavg()]
    say(describe(info))
    figs: list[Figure] = []
    raw: dict[str, Any] = {}
    scratch = L.Scratch(keep=a.keep)
    try:
        fs, raw["startup"] = startup(scratch, a.startup_reps, a.results_rows, say)
        if a.startup_only:
            figs += fs
            return finish(a, argv, figs, raw, info, start)
        img, _ = image_setup()
        figs.append(img)
        f, raw["overhead_and_growth"] = overhead_and_growth(scratch, a.experiments, a.rounds, a.history)
        f1, f2 = [x for x in f if x.section.startswith("1.")], [x for x in f if x.section.startswith("2.")]
        fm, raw["make_research"] = make_research(scratch, a.experiments)
        fv, raw["verify_on"] = overhead_verify_on(scratch, a.verify_experiments)
        fsplit, raw["verify_on_split"] = overhead_verify_on(scratch, a.verify_experiments, split=True)
        fv += fsplit
        ft, raw["throughput"] = throughput(scratch, a.throughput_experiments, a.throughput_rounds)
        fc, raw["cli"] = cli(scratch, a.cli_reps, a.results_rows)
        figs += f1 + fm + fv + f2 + ft + fs + fc
        fr, raw["live_report"] = report_refresh(scratch, a.experiments, a.history, say, rounds=a.rounds)
        figs += fr
        if not a.no_slurm:
            from .bench_slurm import engines

            fe, raw["engines"] = engines(scratch, min(a.experiments, 12), say)
            figs += fe
        if not a.no_slots:
            from .bench_slots import EVAL_S, THINK_S, slots_table

            raw["slots_table"], raw["slots"] = [], []
            for keeps in (False, True):
                head, body, got = slots_table(say, keeps=keeps)
                what = f"keeps, each verified ({EVAL_S:g} s evaluation)" if keeps else "discards"
                raw["slots"] += got
                raw["slots_table"] += [
                    f"parallel agents: a think-time agent (T = {THINK_S:g} s per experiment, {what})",
                    "| " + " | ".join(head) + " |",
                    "|" + "---|" * len(head),
                    *["| " + " | ".join(r) + " |" for r in body],
                ]
    finally:
        scratch.close()
        if a.keep:
            say(f"scratch labs kept in {scratch.root}")
    return finish(a, argv, figs, raw, info, start)


def finish(a: argparse.Namespace, argv: list[str] | None, figs: list[Figure], raw: dict[str, Any],
           info: dict[str, Any], start: float) -> int:  # fmt: skip
    """Print the table and the machine, write the JSON file."""
    wall = time.perf_counter() - start
    info["load_end"] = [round(x, 2) for x in os.getloadavg()]
    print(table(figs))
    if raw.get("slots_table"):
        print("\n" + "\n".join(raw["slots_table"]))
    print(f"\nmachine: {describe(info)}")
    print(f"load average (1, 5, 15 min) at the start {info['load_start']}, at the end {info['load_end']}")
    print(f"bench wall time: {wall:.0f} s; loops run with ARL_QUIET=1 ARL_BASE_FROM=debootstrap, the offline agent")
    a.output.parent.mkdir(parents=True, exist_ok=True)
    doc = {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "commit": L.sh(["git", "-C", str(ROOT), "rev-parse", "HEAD"], check=False).strip(),
        "command": "make bench" + (f" BENCH_ARGS='{' '.join(argv or sys.argv[1:])}'" if (argv or sys.argv[1:]) else ""),
        "machine": info,
        "wall_s": round(wall, 1),
        "figures": as_json(figs),
        "raw": raw,
    }
    a.output.write_text(json.dumps(doc, indent=1, default=str) + "\n")
    print(f"written to {a.output.relative_to(ROOT) if a.output.is_relative_to(ROOT) else a.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
