"""Three real Claude Code agents at once (the scripted API, one conversation per process, the one fake): `max_cost`
is the sum over the slots and a hard limit, each slot's cost is counted once, and a stop freezes them all."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .claude_lab import (
    DONE_TURN,
    KEEP_TURN,
    RAISE_TURN,
    Secrets,
    arl_run,
    claude_image_fixture,  # noqa: F401  (a fixture)
    fake_api,
    lab_name,
    priced,
    served_cost,
    status,
)
from .conftest import git
from .loophelpers import check_history, containers_of, set_toml
from .test_broker_limits import billed_past

pytestmark = [pytest.mark.docker, pytest.mark.lab(image="claude_image", own_name=True)]


def test_max_cost_sums_three_claude_slots(lab: Path) -> None:
    set_toml(lab, "run", "agents", 3)
    git(lab, "commit", "-qam", "three agents")
    script = [RAISE_TURN, KEEP_TURN, DONE_TURN]
    one_experiment = priced(script[:2])
    limit = round(one_experiment * 2.5, 6)  # more than any one slot's first experiment, less than three of them
    sec = Secrets()
    with fake_api(script, script, script) as api:
        proc = arl_run(
            lab,
            sec.env(api),
            "--max-iterations",
            "30",
            "--max-cost",
            str(limit),
            "--",
            "--max-turns",
            "40",
            timeout=400,
        )
        main = api.main_requests()
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "stop: max_cost" in proc.stdout, proc.stdout[-3000:]
    assert {r.conversation for r in main} == {0, 1, 2}  # three Claude Code processes, one per slot
    rs = check_history(lab, lab_name(lab))
    # At most one keep wins (the budget may end the run before any verdict): the same change from the other slots,
    # judged against the new best, is not better.
    assert [r["outcome"] for r in rs[1:]].count("keep") <= 1, [r["outcome"] for r in rs]
    st = status(lab)
    # The run's cost is the sum of the slots' and reached the limit; it is what the API served (the broker counts
    # each slot's calls, a slot frozen mid-message included), and nothing was billed past the limit but the calls
    # in flight when it was crossed, one per slot.
    assert st["cost_usd"] >= limit and st["cost_usd"] == pytest.approx(served_cost(main), abs=1e-9 * len(main))
    assert billed_past(api, limit) <= 3
    assert st["cost_usd"] == pytest.approx(sum(s["cost_usd"] for s in st["slots"]), abs=3e-6)
    assert all(s["cost_usd"] > 0 for s in st["slots"])
    events = [json.loads(ln) for ln in (lab / ".arl" / "runs.jsonl").read_text().splitlines()]
    assert [e["reason"][:8] for e in events if e.get("event") == "stop"] == ["max_cost"]
    assert not containers_of(lab)
