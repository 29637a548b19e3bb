"""Parallel agents (`[run] agents = N`) on the real engine: one history, one branch, one decider; every guarantee of
the single-agent loop holds with three slots (contiguous ids, a ref per experiment, a linear keep chain, isolated
workspaces, resume after kill -9, exact budgets, a clean Ctrl-C)."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

from arl.history import results

from .conftest import arl, git, run
from .loophelpers import (
    check_history,
    containers_of,
    rows,
    run_arl,
    set_toml,
    start,
    stop_proc,
    wait_for,
)

pytestmark = pytest.mark.docker
ENV = {"ARL_BASE_FROM": "debootstrap"}


@pytest.fixture
def three_agents(lab: Path) -> Path:
    """The lab with `[run] agents = 3`, committed."""
    set_toml(lab, "run", "agents", 3)
    git(lab, "commit", "-qam", "three agents")
    return lab


def keep_chain(lab: Path) -> list[str]:
    """The experiments of the keeps on the branch, oldest first; the chain must be linear (no merges)."""
    assert git(lab, "rev-list", "--merges", "HEAD").strip() == ""
    log = git(lab, "log", "--reverse", "--format=%(trailers:key=Arl-Experiment,valueonly)")
    return [ln.strip() for ln in log.splitlines() if ln.strip()]


def answered_everything(lab: Path, n: int) -> bool:
    """No verdict left in any slot's control folder: each was answered (and archived) exactly once."""
    control = [lab / ".arl" / ("control" if k == 0 else f"control-{k}") for k in range(n)]
    return all(not list(c.glob("verdict-*")) for c in control)


@pytest.mark.usefixtures("three_agents")
def test_three_slots_one_history(lab: Path) -> None:
    code, out, err = run_arl(lab, "--max-iterations", "15", "--plateau-threshold", "0")
    assert code == 0, (out + err)[-3000:]
    assert "stop: max_iterations: 15 experiments in this run" in out
    rs = check_history(lab)  # ids unique and increasing, every row's commit is its ref, the pipeline clean
    assert [int(r["id"]) for r in rs] == list(range(len(rs)))  # contiguous
    decided = [r for r in rs[1:] if r["outcome"] in ("keep", "discard", "vetoed")]
    assert len(decided) >= 15 and {r["slot"] for r in rs[1:]} == {"0", "1", "2"}, out
    # Verdicts written before the stop froze every slot are answered; what was half-done is saved as interrupted.
    assert all(r["outcome"] in ("keep", "discard", "vetoed", "interrupted") for r in rs[1:])
    assert answered_everything(lab, 3) and not containers_of(lab)
    kept = [r["id"] for r in rs if r["outcome"] == "keep"]
    assert keep_chain(lab) == kept and kept, kept  # every keep on the branch, in order, nothing else
    # A keep is judged against the best of all slots: the best column never gets worse.
    bests = [float(r["best"]) for r in rs]
    assert bests == sorted(bests, reverse=True)
    assert "[slot 1]" in out and "[slot 2]" in out  # the live view says whose words these are


@pytest.mark.usefixtures("three_agents")
def test_slots_are_isolated(lab: Path) -> None:
    # Each agent adds its own marker file, checks it sees no other slot's, then proposes it as a keep (the score
    # does not change: each is judged, verified on its own tree, and vetoed as no improvement).
    agent = (
        "n=0; while :; do n=$((n+1)); echo $ARL_SLOT > marker-$ARL_SLOT.txt; "
        "others=$(ls marker-*.txt | grep -v marker-$ARL_SLOT.txt | wc -l); "
        "echo $n $others >> /workspace/notes.md; arl eval >/dev/null; "
        'arl verdict keep --notes "slot $ARL_SLOT try $n"; done'
    )
    set_toml(lab, "agent", "command", ["sh", "-c", agent])
    git(lab, "commit", "-qam", "marker agents")
    code, out, err = run_arl(lab, "--max-iterations", "9", "--plateau-threshold", "0", agent="command")
    assert code == 0, (out + err)[-3000:]
    rs = check_history(lab)
    tried = [r for r in rs[1:] if r["outcome"] in ("vetoed", "keep")]
    assert len(tried) >= 9 and {r["slot"] for r in tried} == {"0", "1", "2"}
    for r in tried:  # the snapshot of each attempt (= the tree verified) holds its own slot's marker only
        files = git(lab, "ls-tree", "-r", "--name-only", r["commit"], "--", "pipeline").split()
        markers = sorted(f for f in files if "marker-" in f)
        assert markers == [f"pipeline/marker-{r['slot']}.txt"], (r["id"], r["slot"], markers)
        assert f"slot {r['slot']} try" in r["notes"]
    for k in range(3):  # and no agent ever saw another slot's file in its workspace
        seen = (lab / ".arl" / "notes" / f"{k}.md").read_text().split("\n")
        assert all(line.split()[1] == "0" for line in seen if line.strip()), (k, seen)
    assert "marker-" not in git(lab, "ls-tree", "-r", "--name-only", "HEAD")  # nothing was kept


@pytest.mark.usefixtures("three_agents")
def test_kill_9_with_three_slots_then_resume(lab: Path, tmp_path: Path) -> None:
    log = tmp_path / "run.log"
    proc = start(["arl", "run", "--data", "data", "--agent", "offline", "--seed", "4", "--max-iterations", "500",
                  "--plateau-threshold", "0"], lab, log)  # fmt: skip
    try:
        wait_for(lambda: len(rows(lab)) >= 8, 240, "seven experiments of three slots")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
    finally:
        stop_proc(proc)
    before = rows(lab)
    assert len(containers_of(lab)) >= 1  # the agents outlived their host process
    code, out, err = run_arl(lab, "--max-iterations", "3", "--plateau-threshold", "0")
    assert code == 0, (out + err)[-3000:]
    assert "repairing its state before starting" in err
    rs = check_history(lab)
    assert [int(r["id"]) for r in rs] == list(range(len(rs)))  # contiguous: nothing doubled, nothing skipped
    assert [r["commit"] for r in rs[: len(before)]] == [r["commit"] for r in before]  # nothing rewritten
    assert {r["run"] for r in rs} == {"1", "2"} and answered_everything(lab, 3) and not containers_of(lab)
    assert keep_chain(lab) == [r["id"] for r in rs if r["outcome"] == "keep"]


@pytest.mark.usefixtures("three_agents")
def test_ctrl_c_tears_down_every_slot(lab: Path, tmp_path: Path) -> None:
    log = tmp_path / "run.log"
    proc = start(["arl", "run", "--data", "data", "--agent", "offline", "--max-iterations", "500",
                  "--plateau-threshold", "0"], lab, log)  # fmt: skip
    try:
        wait_for(lambda: len(containers_of(lab)) == 3, 180, "three agent containers")
        wait_for(lambda: len(rows(lab)) >= 5, 180, "four experiments")
        os.kill(proc.pid, signal.SIGINT)  # Ctrl-C
        assert proc.wait(120) == 130, log.read_text()[-3000:]
    finally:
        stop_proc(proc)
    assert not containers_of(lab) and not (lab / ".arl" / "lock").exists(), log.read_text()[-3000:]
    check_history(lab)
    assert answered_everything(lab, 3)
    status = json.loads(arl("status", "--json", cwd=lab).stdout)
    assert status["active"] is False


def test_a_history_without_the_slot_column_is_read_and_upgraded(tmp_path: Path) -> None:
    old = "\t".join(results.OLD_COLUMNS) + "\n" + "0\t1\tt\tbaseline\t3.5\t3.5\t\t3.5\t0\tabc\toffline\tbase\t{}\n"
    path = tmp_path / "results.tsv"
    path.write_text(old)
    (row,) = results.read(path).rows
    assert row["slot"] is None and row["score"] == 3.5
    results.append(path, {**row, "id": 1, "outcome": "discard", "slot": 2})
    lines = path.read_text().splitlines()
    assert lines[0].split("\t") == results.COLUMNS and lines[0].endswith("\tslot")
    assert [r["slot"] for r in results.read(path).rows] == [0, 2]


@pytest.mark.usefixtures("three_agents")
def test_the_labs_makefile_drives_three_slots_unchanged(lab: Path) -> None:
    proc = run(
        ["make", "research", "DATA=data", "ARGS=--agent offline --seed 5 --max-iterations 6 --plateau-threshold 0"],
        cwd=lab,
        check=False,
        timeout=300,
        env=ENV,
    )
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    assert "stop: max_iterations: 6 experiments" in proc.stdout
    rs = check_history(lab)
    assert {r["slot"] for r in rs[1:]} == {"0", "1", "2"} and answered_everything(lab, 3)
    assert not containers_of(lab)


def test_results_by_slot(tmp_path: Path) -> None:
    from .test_plot import lab_with, without_holdout
    from .test_results_cmd import HISTORY

    lab = lab_with(tmp_path, [{**r, "slot": i % 2} for i, r in enumerate(without_holdout(HISTORY))])
    every = json.loads(arl("results", "--format", "json", cwd=lab).stdout)
    one = json.loads(arl("results", "--format", "json", "--slot", "1", cwd=lab).stdout)
    assert [r["id"] for r in one] == [r["id"] for r in every if r["slot"] == 1 or r["outcome"] == "baseline"]
    assert {r["slot"] for r in one if r["outcome"] != "baseline"} == {1}
    table = arl("results", cwd=lab).stdout.splitlines()
    assert table[0].split()[:3] == ["id", "time", "slot"]  # the column shows when agents ran in parallel
