"""Fault injection on the real engine: arl killed with SIGKILL at every fault point (ARL_FAULT, arl/faults.py),
the agent's container killed, out of memory, gone early or silent, and `make research` killed as a whole process
group. After each, the next `arl run` must resume: no experiment lost, none recorded twice, git consistent.

The suite prints one table at the end of the session (fault, point, survived, lost, doubled)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from arl.config.context import open_lab
from arl.util import faults

from .conftest import LabMaker, git, summary_table
from .loophelpers import containers_of, kill_agent, rows, run_arl, set_toml, start, stop_proc, wait_for

# ---- the table ---------------------------------------------------------------------------------------------------

TITLE = "fault injection: every fault, then `arl run` again"
COLUMNS = ["fault", "point", "survived", "lost", "doubled"]


@pytest.fixture(scope="module")
def table() -> list[list[object]]:
    return summary_table(TITLE, COLUMNS)


# ---- the lab -----------------------------------------------------------------------------------------------------

# For the restart points: an agent that leaves an edit behind and dies (a crash with a dirty pipeline).
DYING_AGENT = ["sh", "-c", "echo 'EXTRA = 1' >> model.py; exit 3"]
# A name of its own: nothing of this lab (containers, refs) can meet another lab's on this engine.
pytestmark = [pytest.mark.docker, pytest.mark.lab(own_name=True, settings={"agent": {"command": DYING_AGENT}})]
QUIET = {"ARL_QUIET": "1"}


def ref_prefix(lab: Path) -> str:
    return f"refs/arl/{open_lab(str(lab)).name}/experiments"


def set_agent(lab: Path, command: list[str], **sandbox: str) -> None:
    set_toml(lab, "agent", "command", command)
    for key, value in sandbox.items():
        set_toml(lab, "sandbox", key, value)
    git(lab, "commit", "-qam", "agent for this fault")


# ---- the audit: what must hold after every fault and resume --------------------------------------------------------


@dataclass
class Audit:
    lost: int = 0
    doubled: int = 0
    problems: list[str] = field(default_factory=list)

    def lose(self, n: int, why: str) -> None:
        self.lost += n
        self.problems.append(f"lost: {why}")

    def double(self, n: int, why: str) -> None:
        self.doubled += n
        self.problems.append(f"doubled: {why}")

    def bad(self, why: str) -> None:
        self.problems.append(why)


def _git(lab: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", "-C", str(lab), *args], capture_output=True, text=True)


def _rev(lab: Path, spec: str) -> str:
    return _git(lab, "rev-parse", "--verify", "--quiet", spec).stdout.strip()


def _json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def audit(lab: Path) -> Audit:
    a = Audit()
    root = lab
    rs = rows(root)
    metrics = [json.loads(r["metrics"] or "{}") for r in rs]

    # Experiment ids: unique, and none missing from 0 to the last.
    ids = [int(r["id"]) for r in rs]
    if len(ids) != len(set(ids)):
        a.double(len(ids) - len(set(ids)), f"experiment ids repeat: {ids}")
    gaps = sorted(set(range(max(ids, default=-1) + 1)) - set(ids))
    if gaps:
        a.lose(len(gaps), f"experiment ids missing: {gaps}")
    if [r["outcome"] for r in rs].count("baseline") != 1:
        a.bad(f"not exactly one baseline: {[r['outcome'] for r in rs]}")

    # Every verdict the agent wrote has exactly one row (matched by run and verdict_seq), or a rejection.
    seqs = Counter((r["run"], m["verdict_seq"]) for r, m in zip(rs, metrics) if "verdict_seq" in m)
    for (run, seq), n in seqs.items():
        if n > 1:
            a.double(n - 1, f"verdict {seq} of run {run} recorded {n} times")
    events = [json.loads(ln) for ln in (root / ".arl" / "runs.jsonl").read_text().splitlines() if ln.strip()]
    starts = sorted((e["time"], e["run"]) for e in events if e.get("event") == "start")
    control, archive = root / ".arl" / "control", root / ".arl" / "verdicts"
    pending = sorted(control.glob("verdict-*.json"))
    if pending:
        a.lose(len(pending), f"verdicts never answered: {[p.name for p in pending]}")
    written: set[tuple[str, int]] = set()
    for path in sorted(archive.glob("verdict-*.json")) + pending:
        v = _json(path)
        if not isinstance(v, dict) or not isinstance(v.get("seq"), int):
            a.bad(f"{path.name} is not a verdict the offline agent wrote: {path.read_bytes()[:80]!r}")
            continue
        seq = v["seq"]
        run = str(max([r for t, r in starts if t <= v.get("time", 0)], default=0))
        written.add((run, seq))
        ack = _json(control / f"ack-{seq}.json") or _json(archive / f"ack-{seq}.json")  # answered acks move there
        if ack is None:
            a.lose(1, f"verdict {seq} (run {run}) has no ack")
            continue
        matching = [r for r, m in zip(rs, metrics) if r["run"] == run and m.get("verdict_seq") == seq]
        if ack.get("outcome") == "rejected":
            if matching:
                a.bad(f"verdict {seq} was rejected ({ack.get('reason')}) yet recorded")
        elif not matching:
            a.lose(1, f"verdict {seq} of run {run} (acked {ack.get('outcome')}) has no row")
        elif str(ack.get("experiment")) != matching[0]["id"]:
            a.bad(f"verdict {seq}: ack says experiment {ack.get('experiment')}, the row is {matching[0]['id']}")
    phantom = set(seqs) - written
    if phantom:
        a.bad(f"rows for verdicts nobody wrote: {sorted(phantom)}")

    # Git: every row's commit resolves and is its ref; each keep is one commit on the branch, of the same tree.
    for r in rs:
        if not r["commit"] or not _rev(root, r["commit"] + "^{commit}"):
            a.bad(f"experiment {r['id']}: commit {r['commit']!r} does not resolve")
        elif _rev(root, f"{ref_prefix(lab)}/{r['id']}") != r["commit"]:
            a.bad(f"experiment {r['id']}: {ref_prefix(lab)}/{r['id']} is not the row's commit")
    for r in rs:
        if r["outcome"] == "interrupted" and _rev(root, f"{r['commit']}:pipeline") == _rev(
            root, f"{r['commit']}^:pipeline"
        ):
            a.double(1, f"interrupted experiment {r['id']} records no change (a repair mistook clean for dirty)")
    log = _git(root, "log", "--first-parent", "--format=%H %(trailers:key=Arl-Experiment,valueonly,separator=%x2C)")
    chain: dict[str, list[str]] = {}
    for line in log.stdout.splitlines():
        sha, _, exp = line.partition(" ")
        if exp.strip():
            chain.setdefault(exp.strip(), []).append(sha)
    keeps = {r["id"]: r for r in rs if r["outcome"] == "keep"}
    for exp_id, r in keeps.items():
        commits = chain.get(exp_id, [])
        if not commits:
            a.lose(1, f"keep {exp_id} has no commit on the branch")
        elif len(commits) > 1:
            a.double(len(commits) - 1, f"keep {exp_id} committed {len(commits)} times")
        elif _rev(root, f"{commits[0]}:pipeline") != _rev(root, f"{r['commit']}:pipeline"):
            a.bad(f"keep {exp_id}: the branch commit's pipeline is not the row's")
    strays = sorted(set(chain) - set(keeps))
    if strays:
        a.bad(f"commits on the branch for experiments that are not keeps: {strays}")
    fsck = _git(root, "fsck", "--no-progress")
    broken = [ln for ln in (fsck.stdout + fsck.stderr).splitlines() if not ln.startswith(("dangling", "notice"))]
    if fsck.returncode != 0 or broken:
        a.bad(f"git fsck: {broken[:5]}")

    # Nothing left behind: clean pipeline, no container, no active run, no lock.
    dirty = _git(root, "status", "--porcelain", "--untracked-files=all", "--", "pipeline").stdout.strip()
    if dirty:
        a.bad(f"the pipeline is dirty: {dirty}")
    left = containers_of(root)
    if left:
        a.bad(f"containers left: {left}")
    st = _json(root / ".arl" / "state.json") or {}
    if st.get("active") or (root / ".arl" / "lock").exists():
        a.bad("the run state is still active or the lock is held")
    return a


def record(table: list[list[object]], fault: str, point: str, a: Audit, ok: bool) -> None:
    table.append([fault, point, "yes" if ok and not a.problems else "no", a.lost, a.doubled])


def check(a: Audit, *logs: str) -> None:
    assert not a.problems, "\n".join(a.problems) + "\n---\n" + "\n---\n".join(log[-3000:] for log in logs)


# ---- every fault point -----------------------------------------------------------------------------------------

# How the first run reaches each point. With --seed 1 the offline agent's first verdict on the example is a keep
# and its fifth a discard; the restart points need a container that dies, which DYING_AGENT does.
OFFLINE = ["--plateau-threshold", "0", "--agent", "offline", "--seed", "1", "--max-iterations", "8"]
DYING = ["--plateau-threshold", "0", "--agent", "command", "--max-iterations", "4", "--max-restarts", "3"]
FIRST_RUN = {p: (DYING if p in ("after-restart", "restart:after-record") else OFFLINE) for p in faults.POINTS}
COMMAND = ["--plateau-threshold", "0", "--agent", "command"]
RESUME = ["--plateau-threshold", "0", "--agent", "offline", "--seed", "5", "--max-iterations", "3"]


@pytest.mark.parametrize("point", faults.POINTS)
def test_sigkill_at_every_fault_point_then_resume(lab: Path, table: list[list[object]], point: str) -> None:
    first = run_arl(lab, *FIRST_RUN[point], fault=point, env=QUIET)
    first_log = first.stdout + first.stderr
    # -9: the point was reached and arl died there (a run that finished did not test this point).
    assert first.returncode == -signal.SIGKILL, f"exit {first.returncode}: {point} not reached\n{first_log[-3000:]}"
    second = run_arl(lab, *RESUME, env=QUIET)
    second_log = second.stdout + second.stderr
    resumed = second.returncode == 0 and "stop: max_iterations" in second.stdout
    a = audit(lab)
    runs = {r["run"] for r in rows(lab)}
    if "2" not in runs:
        a.bad(f"the second run recorded nothing: runs {sorted(runs)}")
    record(table, "arl killed (SIGKILL)", point, a, resumed)
    assert resumed, second_log[-4000:]
    check(a, first_log, second_log)


def _lag_index(lab: Path) -> None:
    """`git commit` killed after moving the branch, before writing the index: the index is the parent's."""
    git(lab, "read-tree", "HEAD~1")
    (lab / ".git" / "index.lock").write_text("")


def _locks_mid_keep(lab: Path) -> None:
    """git killed in `git add` / `git commit` / `update-ref` / a snapshot: their lock files stay behind."""
    for lock in (".git/index.lock", ".git/refs/heads/main.lock", ".arl/keep.index.lock",
                 f".git/{ref_prefix(lab)}/1.lock"):  # fmt: skip
        (lab / lock).parent.mkdir(parents=True, exist_ok=True)
        (lab / lock).write_text("")


# A kill -9 that lands inside a git command (as `make research` killed as a group can): arl dies at the point,
# then what the git command would have left is laid down by hand.
GIT_KILLS = {
    "keep:after-row": ("git killed mid-commit: stale index, branch, snapshot and ref locks", _locks_mid_keep),
    "keep:after-commit": ("git commit killed after moving the branch: index lags HEAD", _lag_index),
}


@pytest.mark.parametrize("point", sorted(GIT_KILLS))
def test_git_killed_mid_command_then_resume(lab: Path, table: list[list[object]], point: str) -> None:
    fault, lay_down = GIT_KILLS[point]
    first = run_arl(lab, *OFFLINE, fault=point, env=QUIET)
    assert first.returncode == -signal.SIGKILL, (first.stdout + first.stderr)[-3000:]
    lay_down(lab)
    second = run_arl(lab, *RESUME, env=QUIET)
    second_log = second.stdout + second.stderr
    resumed = second.returncode == 0 and "stop: max_iterations" in second.stdout
    a = audit(lab)
    leftover = [p for p in (*(lab / ".git").rglob("*.lock"), *(lab / ".arl").glob("*.lock"))]
    if leftover:
        a.bad(f"lock files left: {leftover}")
    record(table, fault, point, a, resumed)
    assert resumed, second_log[-4000:]
    check(a, second_log)


# ---- the agent's container -------------------------------------------------------------------------------------


def test_agent_container_killed_from_outside(lab: Path, table: list[list[object]], tmp_path: Path) -> None:
    log = tmp_path / "run.log"
    # 12 experiments: the kill lands after the first (a frozen container is retried), with room for the run to go on
    proc = start(["arl", "run", "--data", "data", "--agent", "offline", "--seed", "1", "--max-iterations", "12",
                  "--plateau-threshold", "0"], lab, log)  # fmt: skip
    try:
        wait_for(lambda: len(rows(lab)) >= 2, 180, "the first experiment")
        kill_agent(lab)
        code = proc.wait(300)
    finally:
        stop_proc(proc)
    a = audit(lab)
    rs = rows(lab)
    crashes = [r for r in rs if r["outcome"] == "crash"]
    if not crashes or "exited with code 137" not in crashes[0]["notes"]:
        a.bad(f"no crash row naming the kill: {[(r['outcome'], r['notes']) for r in rs]}")
    elif crashes[0] is rs[-1]:
        a.bad("the run did not go on after the crash")
    record(table, "agent container killed (docker kill)", "mid-run", a, code == 0)
    assert code == 0, log.read_text()[-3000:]
    check(a, log.read_text())


def test_agent_out_of_memory(lab: Path, table: list[list[object]]) -> None:
    # Writing 1 GiB under a 64 MiB limit (without swap): the kernel's OOM killer ends the agent.
    set_agent(lab, ["python3", "-c", "x = bytearray(b'x') * (1 << 30)"], memory="64m")
    proc = run_arl(lab, *COMMAND, "--max-restarts", "0", "--max-iterations", "5", env=QUIET)
    a = audit(lab)
    outcomes = [(r["outcome"], r["notes"]) for r in rows(lab)]
    if outcomes[1:] != [("crash", "[arl] the container ran out of memory (limit 64m)")]:
        a.bad(f"expected one crash naming the memory limit: {outcomes}")
    ok = proc.returncode == 1 and "stop: max_restarts" in proc.stdout  # 1: its only experiment crashed
    record(table, "agent out of memory ([sandbox] memory = 64m)", "mid-run", a, ok)
    assert ok, (proc.stdout + proc.stderr)[-3000:]
    check(a, proc.stdout + proc.stderr)


def test_agent_exits_zero_early(lab: Path, table: list[list[object]]) -> None:
    set_agent(lab, ["true"])
    proc = run_arl(lab, *COMMAND, "--max-restarts", "1", "--max-iterations", "5", env=QUIET)
    a = audit(lab)
    outcomes = [(r["outcome"], r["notes"]) for r in rows(lab)]
    # A clean end is no crash and no experiment: relaunched at once, then, ending again without a verdict, stopped.
    if outcomes[1:]:
        a.bad(f"expected no experiment (two clean ends without a verdict): {outcomes}")
    # a stop on max_restarts is a failure of the run, not a limit the user set: exit 1
    ok = proc.returncode == 1 and "stop: max_restarts: the agent's sessions ended 2 times in a row" in proc.stdout
    ok = ok and proc.stdout.count("relaunching the agent after its session ended (done)") == 1
    record(table, "agent exits 0 without a verdict", "launch", a, ok)
    assert ok, (proc.stdout + proc.stderr)[-3000:]
    check(a, proc.stdout + proc.stderr)


def test_no_verdict_within_the_iteration_timeout(lab: Path, table: list[list[object]]) -> None:
    set_agent(lab, ["sleep", "3600"])
    proc = run_arl(lab, *COMMAND, "--max-restarts", "0", "--iteration-timeout", "3", "--max-iterations", "5",
                   env=QUIET, timeout=120)  # fmt: skip
    a = audit(lab)
    outcomes = [(r["outcome"], r["notes"]) for r in rows(lab)]
    if outcomes[1:] != [("crash", "[arl] no verdict within the iteration timeout (3 s)")]:
        a.bad(f"expected one crash naming the timeout: {outcomes}")
    ok = proc.returncode == 1 and "stop: max_restarts" in proc.stdout  # 1: its only experiment crashed
    record(table, "no verdict (sleep 3600, --iteration-timeout 3)", "wait", a, ok)
    assert ok, (proc.stdout + proc.stderr)[-3000:]
    check(a, proc.stdout + proc.stderr)


def test_make_research_process_group_killed_then_resumed(lab: Path, table: list[list[object]], tmp_path: Path) -> None:
    log = tmp_path / "make.log"
    args = "ARGS=--agent offline --seed 1 --max-iterations 200 --plateau-threshold 0"
    proc = start(["make", "research", "DATA=data", args], lab, log)
    try:
        wait_for(lambda: len(rows(lab)) >= 4, 240, "three experiments through make research")
        os.killpg(proc.pid, signal.SIGKILL)  # make, its shell and the arl-step of the moment, all at once
        proc.wait(30)
    finally:
        stop_proc(proc)
    assert (lab / ".arl" / "lock").exists(), "kill -9 leaves the lock behind (no teardown ran)"
    second = run_arl(lab, *RESUME, env=QUIET)
    second_log = second.stdout + second.stderr
    ok = second.returncode == 0 and "did not finish; repairing" in second_log and "stop: max_iterations" in second_log
    a = audit(lab)
    record(table, "make research: kill -9 of the process group", "mid-run", a, ok)
    assert ok, second_log[-4000:]
    check(a, log.read_text(), second_log)


# ---- two labs of one name on one engine ------------------------------------------------------------------------


def test_two_labs_with_the_same_name_do_not_kill_each_other(make_lab: LabMaker, tmp_path: Path) -> None:
    first, other = make_lab(), make_lab()  # both named curve-fit
    proc = start(["arl", "run", "--data", "data", "--agent", "offline", "--max-iterations", "500",
                  "--plateau-threshold", "0"], first, tmp_path / "a.log")  # fmt: skip
    try:
        wait_for(lambda: len(rows(first)) >= 2, 180, "the first lab's first experiment")
        run_arl(other, "--max-iterations", "1", check=True)
        done = len(rows(first))
        wait_for(lambda: len(rows(first)) >= done + 1, 120, "one more experiment in the first lab")
    finally:
        stop_proc(proc)
    assert [r for r in rows(first) if r["outcome"] == "crash"] == []
