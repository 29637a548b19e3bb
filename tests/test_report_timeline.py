"""The report's slot timeline in a real browser: a real 2-slot run (one agent's keeps verified beside the decider, the
other's sessions ending after each verdict and relaunched) shows, per slot, when its agent thought, waited for a
decision, was frozen (decided, its keep verified) and relaunched, from the transitions the loop recorded; the live
page is rewritten by its worker, not by the decider, and is complete when the run returns."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from arl.history import results

from .browser import Browser
from .conftest import arl, new_lab
from .loophelpers import cleanup_containers, run_arl
from .test_report import browser, chromium  # noqa: F401  (fixtures)

pytestmark = pytest.mark.docker

# Slot 0 proposes a keep each time (verified beside the decider: frozen meanwhile); slot 1 discards once and ends its
# session (a clean end: relaunched at once, its workspace as it left it).
AGENT = (
    "n=0; while :; do n=$((n+1)); sleep 1; "
    'sed -i "s/^SLOPE = .*/SLOPE = 0.00$ARL_SLOT$n/" model.py; arl eval >/dev/null; '
    'if [ "$ARL_SLOT" = 1 ]; then arl verdict discard --notes "slot 1 try $n" >/dev/null; exit 0; fi; '
    'arl verdict keep --notes "slot 0 try $n" >/dev/null; done'
)


@pytest.fixture(scope="module")
def ran_lab(tmp_path_factory: pytest.TempPathFactory, base_image: str) -> Iterator[Path]:
    """The example after one 2-slot run of AGENT, made once for the module's tests (by new_lab itself: make_lab's
    labs live for one test)."""
    settings = {"run": {"agents": 2}, "agent": {"command": ["sh", "-c", AGENT]}}
    ran_lab = new_lab(tmp_path_factory.mktemp("timeline") / "repo", settings=settings)
    out = run_arl(
        ran_lab, "--max-iterations", "8", "--plateau-threshold", "0", agent="command", timeout=600, check=True
    )
    assert "max_iterations" in out.stdout, out.stdout[-3000:] + out.stderr[-3000:]
    yield ran_lab
    cleanup_containers(ran_lab)


def transitions(ran_lab: Path) -> list[dict]:
    return [json.loads(x) for x in (ran_lab / ".arl" / "runs" / "1" / "events.jsonl").read_text().splitlines()]


def test_the_run_records_each_slots_transitions(ran_lab: Path) -> None:
    got = transitions(ran_lab)
    kinds = {k: [e["what"] for e in got if e["slot"] == k] for k in (0, 1)}
    assert {"launch", "verdict", "freeze", "verify", "thaw"} <= set(kinds[0]), kinds[0]
    assert {"launch", "verdict", "freeze", "end"} <= set(kinds[1]) and kinds[1].count("launch") >= 2, kinds[1]
    rows = [r for r in results.read(ran_lab / "results.tsv").rows if r["run"] == 1 and r["outcome"] != "baseline"]
    verified = [r for r in rows if r["slot"] == 0]
    assert 0 < kinds[0].count("verify") <= len(verified)  # its keeps frozen while verified (not one interrupted)


def test_the_timeline_shows_what_each_agent_did(ran_lab: Path, browser: Browser) -> None:  # noqa: F811
    page = ran_lab / ".arl" / "report" / "index.html"  # the run's last rewrite, written when the run ended
    assert '"active": false' in page.read_text()
    browser.load(page.as_uri())
    spans = browser.js(
        "[...document.querySelectorAll('#timeline-svg .span')].map(e => [e.dataset.what, "
        "+e.getAttribute('x'), +e.getAttribute('width'), +e.getAttribute('y')])"
    )
    lanes: dict[float, list[tuple[str, float, float]]] = {}
    for what, x, w, y in spans:
        lanes.setdefault(y, []).append((what, x, w))
    assert len(lanes) == 2
    slot0, slot1 = (lanes[y] for y in sorted(lanes))
    assert {"think", "wait", "decide", "verify"} <= {s[0] for s in slot0}, slot0
    assert {"think", "wait", "decide", "down"} <= {s[0] for s in slot1}, slot1
    for lane in (slot0, slot1):  # one state at a time, in time order, drawn inside the axis
        for (_, x, w), (_, nx, _) in zip(lane, lane[1:]):
            assert x + w <= nx + 1.01 and 70 <= x <= 981
    verifying = sum(w for what, _, w in slot0 if what == "verify")
    assert verifying > 0  # each keep's verification took its time: visible on the lane
    relaunches = browser.js("document.querySelectorAll('#timeline-svg .relaunch').length")
    assert relaunches == sum(1 for e in transitions(ran_lab) if e["slot"] == 1 and e["what"] == "launch") - 1
    ticks = browser.js("[...document.querySelectorAll('#timeline-svg .tick')].map(e => +e.dataset.id)")
    rows = [r["id"] for r in results.read(ran_lab / "results.tsv").rows if r["outcome"] != "baseline"]
    assert sorted(ticks) == rows
    legend = browser.js("document.getElementById('timeline-svg').textContent")
    assert "frozen: its keep verified" in legend and "waiting for a decision" in legend
    assert browser.exceptions() == []


def test_the_worker_wrote_the_page_off_the_decider_path(ran_lab: Path) -> None:
    writes = (ran_lab / ".arl" / "report" / "writes.log").read_text().splitlines()
    assert writes and writes[-1].split()[-1] == "final"  # the run's end wrote the last one
    assert any(w.split()[-1] == "live" for w in writes)  # and a worker the ones before, while the run went on
    timings = [json.loads(x) for x in (ran_lab / ".arl" / "runs.jsonl").read_text().splitlines() if '"timing"' in x]
    spent = sorted(t["report"] * 1000 for t in timings if "report" in t)
    print(f"\nreport on the decider path: median {spent[len(spent) // 2]:.2f} ms, max {spent[-1]:.2f} ms")
    assert spent[len(spent) // 2] < 5  # a request, not a rewrite (the rewrite took 6-26 ms here)


def test_api_waits_backoffs_and_the_budget_are_drawn(ran_lab: Path, browser: Browser, tmp_path: Path) -> None:  # noqa: F811
    """The transitions a command agent cannot cause (an API outage, sessions ending without a verdict, max_cost),
    added to a copy of the run's record where the loop writes them: drawn as their own intervals."""
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(ran_lab, copy, symlinks=True, ignore=shutil.ignore_patterns("workspaces", "quarantine"))
    got = transitions(copy)
    ends = [e["t"] for e in got if e["slot"] == 1 and e["what"] == "end"]
    launches = [e["t"] for e in got if e["slot"] == 1 and e["what"] == "launch" and e["t"] > ends[0]]
    thaws = [e["t"] for e in got if e["slot"] == 0 and e["what"] == "thaw"]
    more = [
        {"t": ends[0] + (launches[0] - ends[0]) / 3, "slot": 1, "what": "api-wait"},
        {"t": ends[0] + 2 * (launches[0] - ends[0]) / 3, "slot": 1, "what": "backoff"},
        {"t": thaws[0] + 0.01, "slot": 0, "what": "budget"},
    ]
    with open(copy / ".arl" / "runs" / "1" / "events.jsonl", "a") as f:
        f.writelines(json.dumps(e) + "\n" for e in more)
    out = tmp_path / "page.html"
    arl("report", "-o", str(out), cwd=copy)
    browser.load(out.as_uri())
    shown = browser.js("[...document.querySelectorAll('#timeline-svg .span')].map(e => e.dataset.what)")
    assert {"api", "backoff", "budget"} <= set(shown), shown
    legend = browser.js("document.getElementById('timeline-svg').textContent")
    assert "waiting for the API" in legend and "backing off" in legend and "frozen: budget spent" in legend
    assert browser.exceptions() == []
