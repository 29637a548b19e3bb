"""Verifications that run beside the decider, so that slots scale when their keeps are verified.

With several slots, a keep's verification (and its holdout) runs in a process of its own (`python -m
arl.loop.verifying LAB SLOT SEQ TREE`: `main` below, its own session, its log under .arl/logs/), while the decider
goes on deciding the other slots' verdicts. The slot stays frozen meanwhile: its agent is waiting for its ack anyway.
The job writes its result to .arl/verifications/<slot>-<seq>.json; the decider records it when it is there, against
the best of that moment, so the history keeps one writer and a keep overtaken by a better one is vetoed. Nothing
lives only in memory: a run killed meanwhile finds the job's result (or the job still running, or dead) in the next
preflight's repair."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from arl.config.config import LabConfig
from arl.config.engine import engine_kind
from arl.engines.choose import engine_of
from arl.evaluation.verification import Verification, VerificationFailed, host_evaluate
from arl.history import results
from arl.loop.run import data_dir, open_run
from arl.report import events
from arl.runstate import slots
from arl.runstate.runstate import RunState, Verifying
from arl.util import sh
from arl.util.fsutil import write_json


def parallel(cfg: LabConfig, st: RunState) -> bool:
    """Whether keeps are verified beside the decider: with more than one slot, unless capped to one at a time."""
    if engine_kind(cfg.engine, st["settings"]) == "slurm":
        return True  # a step of the slot's job, where its resources are, never on the submitting host
    return slots.count(st) > 1 and cfg.run.max_parallel_verifications != 1


def cap(cfg: LabConfig, st: RunState) -> int:
    return cfg.run.max_parallel_verifications or slots.count(st)


def result_path(cfg: LabConfig, slot: int, seq: int) -> Path:
    return cfg.state_dir / "verifications" / f"{slot}-{seq}.json"


def running(st: RunState) -> list[int]:
    """The slots whose keep is being verified, oldest first."""
    on = [(job.get("since", 0.0), k) for k in slots.numbers(st) if (job := slots.of(st, k).get("verifying"))]
    return [k for _, k in sorted(on)]


def _job(st: RunState, slot: int) -> Verifying:
    job = slots.of(st, slot).get("verifying")
    assert job is not None, f"slot {slot} has no verification running"
    return job


def start(cfg: LabConfig, st: RunState, slot: int, seq: int, tree: str, cost: float) -> None:
    """Begin the verification of the slot's keep `seq` (its tree imported, `cost` what its experiment cost so far)."""
    folder = cfg.state_dir / "verifications"
    folder.mkdir(mode=0o700, exist_ok=True)
    result_path(cfg, slot, seq).unlink(missing_ok=True)
    log = cfg.state_dir / "logs" / f"verify-slot{slot}-seq{seq}.log"
    log.parent.mkdir(mode=0o700, exist_ok=True)
    cmd = [sys.executable, "-m", "arl.loop.verifying", str(cfg.root), str(slot), str(seq), tree]
    # where the slot's resources are: on this machine, or a step of the slot's SLURM job
    cmd = engine_of(cfg, st).verification(slots.of(st, slot).get("container") or "", cmd)
    sh.echo(" ".join(cmd) + f" > {log} 2>&1 &")
    with open(log, "ab") as out:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True)
    slots.of(st, slot)["verifying"] = {"seq": seq, "tree": tree, "pid": proc.pid, "since": time.time(), "cost": cost}
    events.record(cfg, st, slot, "verify")
    print(f"[verify] slot {slot}: its keep (verdict {seq}) is verified beside the loop (pid {proc.pid})", flush=True)


def done(cfg: LabConfig, st: RunState) -> int | None:
    """The slot whose verification has ended (a result, or a job that died without one), oldest first."""
    for k in running(st):
        v = _job(st, k)
        if result_path(cfg, k, v["seq"]).exists() or not _alive(v["pid"]):
            return k
    return None


def wait_for(cfg: LabConfig, st: RunState, slot: int, timeout: float) -> None:
    """Until the slot's job has ended (a run's end finishes its verifications rather than losing them)."""
    v = _job(st, slot)
    deadline = time.monotonic() + timeout
    delay = 0.01
    while _alive(v["pid"]) and not result_path(cfg, slot, v["seq"]).exists() and time.monotonic() < deadline:
        time.sleep(delay)
        delay = min(delay * 2, 0.5)


def settle(cfg: LabConfig, st: RunState) -> None:
    """At a run's end or in a repair: let the running verifications finish (their jobs outlive a killed run), so that
    they are recorded rather than lost; one past its time limit is ended (its keep is then verified in the repair)."""
    for k in running(st):
        v = _job(st, k)
        if _alive(v["pid"]) and not result_path(cfg, k, v["seq"]).exists():
            print(f"waiting for the verification of slot {k}'s keep (pid {v['pid']})", flush=True)
            wait_for(cfg, st, k, cfg.eval_timeout * (st["settings"]["repeats"] + 2) + 120)
        if _alive(v["pid"]):
            try:
                os.killpg(v["pid"], 9)
            except OSError:
                pass


def take(cfg: LabConfig, st: RunState, slot: int) -> tuple[Verification | VerificationFailed, float | None]:
    """The job's result (the verification, or why it failed) and its holdout score; the slot is no longer verifying."""
    v = _job(st, slot)
    slots.of(st, slot).pop("verifying", None)
    path = result_path(cfg, slot, v["seq"])
    try:
        got: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError):
        log = cfg.state_dir / "logs" / f"verify-slot{slot}-seq{v['seq']}.log"
        return VerificationFailed(f"verification failed: its process ended without a result (see {log})"), None
    finally:
        path.unlink(missing_ok=True)
    if not got.get("ok"):
        return VerificationFailed(str(got.get("error") or "verification failed")), None
    res = Verification(
        score=float(got["score"]),
        scores=[float(s) for s in got["scores"]],
        metrics=dict(got.get("metrics") or {}),
        seconds=float(got.get("seconds") or 0.0),
        split=bool(got.get("split", True)),
        failures=tuple(got.get("failures") or ()),
    )
    return res, got.get("holdout")


def _alive(pid: int) -> bool:
    try:
        if os.waitpid(pid, os.WNOHANG)[0] == pid:  # our own child that has exited: reaped here
            return False
    except ChildProcessError:
        pass  # not our child (a resumed run): its /proc entry tells
    try:
        with open(f"/proc/{pid}/stat") as f:
            running = f.read().rsplit(")", 1)[1].split()[0] != "Z"
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            # not a pid reused since; the prefix matches `arl.loop.verify_job` too, the job as an earlier arl ran it
            return running and b"arl.loop.verif" in f.read()
    except (OSError, IndexError):
        try:
            os.kill(pid, 0)
            return True
        except OSError:
            return False


def main(argv: list[str]) -> int:
    """The job itself, `python -m arl.loop.verifying LAB SLOT SEQ TREE`: one keep's verification (and its holdout).
    Started by `start`, never by people. It reads the run state and writes only its result file (atomically): the
    decider records the outcome."""
    lab, slot, seq, tree = argv[0], int(argv[1]), int(argv[2]), argv[3]
    cfg, st = open_run(lab)
    s = st["settings"]
    out: dict[str, Any]
    try:
        res = host_evaluate(cfg, st, data_dir(st), s["repeats"], tree, slot)
        out = dict(
            ok=True,
            score=res.score,
            scores=res.scores,
            metrics=res.metrics,
            seconds=res.seconds,
            split=res.split,
            failures=list(res.failures),
            holdout=None,
        )
        # The holdout of a keep that beats the best as it is now: the best only gets better, so a keep the decider
        # accepts later beat this one too, and has its holdout score.
        best, _ = results.best_of(cfg, results.read(cfg.results_file).rows)
        holdout = s.get("holdout")
        if holdout and cfg.better(res.score, best, s["min_improvement"]):
            try:
                out["holdout"] = host_evaluate(cfg, st, Path(holdout), 1, tree, slot).score
            except VerificationFailed:
                pass  # a holdout that does not evaluate hides nothing and decides nothing
    except VerificationFailed as e:
        out = {"ok": False, "error": str(e)}
    write_json(result_path(cfg, slot, seq), out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
