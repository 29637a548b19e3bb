"""`--max-cost` as a hard limit, with two real Claude Code agents that also call the API broker directly from their
Bash tool (as an agent that works around its own cost count would): the broker bills nothing past the limit but the
calls in flight, the run stops with the reason although no verdict was ever written, and arl's total is what the
API served, slot by slot. No provider-side tool reaches the API."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from arl.agents.pricing import claude_cost
from arl.broker.usage import epoch
from tests.fake_anthropic import Turn, bash, text

from .claude_lab import (
    KEEP,
    MODEL,
    RAISE,
    Secrets,
    arl_run,
    claude_image_fixture,  # noqa: F401  (a fixture)
    fake_api,
    served_cost,
    status,
    u,
)
from .conftest import git
from .loophelpers import containers_of, set_toml
from .test_broker_limits import billed_past

pytestmark = [pytest.mark.docker, pytest.mark.lab(image="claude_image", own_name=True)]

# Three calls to the broker's socket with the agent's own tools (billed like turns), then one asking the provider to
# search the web (refused: allow_web is false).
DIRECT = (
    'python3 -c "import http.client as h, socket as s, json\n'
    "class C(h.HTTPConnection):\n def connect(self):\n  self.sock = s.socket(s.AF_UNIX); "
    "self.sock.connect('/workspace/broker/broker.sock')\n"
    "def call(tools):\n"
    f" b = json.dumps(dict(model='{MODEL}', max_tokens=10, tools=tools, messages=[dict(role='user', content='hi')]))\n"
    " c = C('localhost'); c.request('POST', '/v1/messages', b, {'content-type': 'application/json'})\n"
    " r = c.getresponse(); return r.status, r.read()[:200]\n"
    "for i in range(3): print('direct', call([dict(name='x', input_schema=dict(type='object'))]))\n"
    "print('server tool', call([dict(type='web_search_20250305', name='web_search')]))\n"
    '"'
)
TURN = Turn([text("Working on it, and asking the API myself."), bash(DIRECT, "call the API")], u(2000, 700))


def test_budget_stops_two_slots_at_the_limit_and_counts_every_call(lab: Path) -> None:
    set_toml(lab, "run", "agents", 2)
    git(lab, "commit", "-qam", "two agents")
    script = [TURN] * 60  # never a verdict: the sessions would run until the iteration timeout
    limit = round(claude_cost(MODEL, u(2000, 700).as_dict()) * 9.5, 6)  # a few agent turns with their direct calls
    with fake_api(script) as api:
        proc = arl_run(lab, Secrets().env(api), "--max-cost", str(limit), "--", "--max-turns", "80", timeout=300)
        served = api.served_usages()
        main = api.main_requests()
        tools = [t for r in api.requests if isinstance(r.body, dict) for t in r.body.get("tools") or []]
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "stop: max_cost" in proc.stdout, proc.stdout[-3000:]
    # Nothing billed past the limit but what was in flight when it was crossed: one call per slot at most.
    assert billed_past(api, limit) <= 2, [claude_cost(m, x) for m, x in served]
    broker_log = [json.loads(ln) for ln in (lab / ".arl" / "logs" / "broker.jsonl").read_text().splitlines()]
    assert {r["slot"] for r in broker_log if r["status"] == 200} == {0, 1}
    spent = json.loads((lab / ".arl" / "broker" / "budget-spent.json").read_text())  # the broker's own word
    assert spent["spent"] >= limit and set(spent["slots"]) == {"0", "1"}
    # arl's total is what the API served (the direct calls included), split by slot; no row was ever written.
    st = status(lab)
    assert st["cost_usd"] == pytest.approx(served_cost(main), abs=1e-9 * len(main)) and st["cost_usd"] >= limit
    assert all(s["cost_usd"] > 0 for s in st["slots"])
    assert st["cost_usd"] == pytest.approx(sum(s["cost_usd"] for s in st["slots"]), abs=1e-9)
    # The provider's web search never reached it; the broker said why.
    assert all(t.get("type", "custom") == "custom" for t in tools if isinstance(t, dict))
    assert any(r.get("reason") == "refused body" and r["status"] == 400 for r in broker_log)
    assert not containers_of(lab)


# Slot 0 proposes a keep whose host verification takes 45 s more (its pipeline sleeps once where no control folder
# is mounted: in the host's containers, not in its own). Slot 1 waits until that decision runs, then calls the broker
# from its Bash tool ten times a second and goes on past every refusal: only a freeze stops it.
LOOP = (
    'python3 -c "import http.client as h, socket as s, json, time\n'
    "class C(h.HTTPConnection):\n def connect(self):\n  self.sock = s.socket(s.AF_UNIX); "
    "self.sock.connect('/workspace/broker/broker.sock')\n"
    f"b = json.dumps(dict(model='{MODEL}', max_tokens=10, tools=[dict(name='x', input_schema=dict(type='object'))], "
    "messages=[dict(role='user', content='hi')]))\n"
    "time.sleep(25)\n"
    "for i in range(1000):\n"
    " c = C('localhost'); c.request('POST', '/v1/messages', b, {'content-type': 'application/json'})\n"
    " c.getresponse().read(); c.close(); time.sleep(0.1)\n"
    '"'
)
SLOW_KEEP = (
    'if [ "$ARL_SLOT" = 0 ]; then '
    'printf \'\\nimport os, time\\nos.path.exists("/workspace/control") or os.path.exists("/tmp/slept") '
    'or open("/tmp/slept", "w").close() or time.sleep(45)\\n\' >> model.py && '
    f"{RAISE} && {KEEP}; else {LOOP}; fi"
)
WORK = Turn([text("Still working."), bash("echo working", "work")], u(2000, 700))


def test_the_budget_freezes_every_agent_while_a_long_decision_runs(lab: Path) -> None:
    """With one verification at a time, slot 0's keep is verified inside the decision, for 45 s; slot 1 crosses
    max_cost meanwhile with calls from its shell. Every agent is frozen then, not when the decision ends: nothing is
    billed past the limit but what was in flight, and slot 1's refused calls stop within a second or two of the
    crossing (unfrozen, it would go on for the rest of the decision)."""
    set_toml(lab, "run", "agents", 2)
    set_toml(lab, "run", "max_parallel_verifications", 1)
    set_toml(lab, "backend", "eval_timeout", 180)
    git(lab, "commit", "-qam", "two agents, keeps verified in the decision")
    turn = claude_cost(MODEL, u(2000, 700).as_dict())
    limit = round(turn * 9.5, 6)  # two agent turns and eight of slot 1's calls: crossed while slot 0 is decided
    with fake_api([Turn([text("Let me try."), bash(SLOW_KEEP, "work")], u(2000, 700))] + [WORK] * 60) as api:
        proc = arl_run(lab, Secrets().env(api), "--max-cost", str(limit), "--", "--max-turns", "80", timeout=400)
        served = api.served_usages()
    out = proc.stdout
    assert proc.returncode == 0, out[-3000:] + proc.stderr[-3000:]
    assert "stop: max_cost" in out, out[-3000:]
    frozen = out.find("every agent is frozen (during the decision of slot 0's verdict)")
    decided = out.find("[exp    1]")
    assert 0 <= frozen < decided, out[-3000:]  # frozen while the verification still ran
    assert billed_past(api, limit) <= 2, [claude_cost(m, x) for m, x in served]
    broker_log = [json.loads(ln) for ln in (lab / ".arl" / "logs" / "broker.jsonl").read_text().splitlines()]
    refused = [epoch(r["time"]) for r in broker_log if r.get("reason") == "budget spent" and r["slot"] == 1]
    assert refused and refused[-1] - refused[0] < 3, refused  # frozen at once: 10 calls a second stopped
    events = [json.loads(ln) for ln in (lab / ".arl" / "runs.jsonl").read_text().splitlines()]
    froze = [e for e in events if e["event"] == "budget_frozen"]
    assert len(froze) == 1 and any(n.endswith("agent2") for n in froze[0]["containers"]), froze
    assert froze[0]["time"] - refused[0] < 3, (froze, refused[0])
    # and the report's timeline shows slot 1 frozen for the budget from then on
    timeline = [json.loads(ln) for ln in (lab / ".arl" / "runs" / "1" / "events.jsonl").read_text().splitlines()]
    assert [e for e in timeline if e["what"] == "budget" and e["slot"] == 1], timeline
    assert not containers_of(lab)
