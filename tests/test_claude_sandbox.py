"""The real Claude Code binary in arl's sandbox, end to end, against the scripted Anthropic API (the one fake).

`arl run --agent claude` builds arl-agent-claude (the binary from the claude-agent-sdk wheel), starts the agent's
container with `--network none`, and Claude Code calls tests/fake_anthropic.py (listening on the host's loopback
only) through arl's API broker, a host process reached by a unix socket, which adds the real key. The
script's Bash tool calls make the agent edit the curve-fit pipeline, run `arl eval` and `arl verdict`, and report
what the CLI process itself received (/proc/$PPID of its Bash tool is the claude process). Costs are checked against
the usage the server streamed, priced as Claude Code prices it, and against the CLI's own `result` totals.

Each Claude Code process is one conversation of the server (conversation k follows its own script, the last one
serving any later process), and a request's turn is the number of assistant messages it carries: a relaunched
agent starts its script from the top."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from arl.agents.base import StreamAccount
from arl.agents.claude import ClaudeAdapter
from arl.agents.claude_auth import NO_CREDENTIALS
from arl.agents.pricing import claude_cost
from arl.broker.usage import usage_cost
from tests.fake_anthropic import error_turn

from .claude_lab import (
    ARL_ENV,
    BUSY_TURN,
    DISCARD_TURN,
    DONE_TURN,
    IMAGE,
    KEEP_TURN,
    MODEL,
    NON_ROOT,
    PROBE_TURN,
    RAISE_TURN,
    ROUNDED,
    RUN_ARGS,
    WORSEN_TURN,
    Secrets,
    adapter_env_names,
    arl_run,
    claude_image_fixture,  # noqa: F401  (a fixture)
    costs,
    docker_lines,
    fake_api,
    host_listener,
    image_env_names,
    lab_name,
    priced,
    provisional,
    reach_checked,
    result_lines,
    served_cost,
    status,
    tool_result_text,
    transcript_cost,
    transcripts,
)
from .conftest import BIN, LabMaker, arl, git, run
from .loophelpers import check_history, cleanup_containers, containers_of, rows, set_toml, wait_for

pytestmark = [pytest.mark.docker, pytest.mark.lab(image="claude_image", own_name=True)]


# ------------------------------------------------------------------------------------------------------ tests


@pytest.mark.parametrize("as_user", ["root", "non-root"])
def test_two_experiments_argv_env_cost_transcript(make_lab: LabMaker, as_user: str) -> None:
    if as_user == "root" and os.getuid() != 0:
        pytest.skip("the root variant needs a root host user")
    if as_user == "non-root" and (os.getuid() != 0 or shutil.which("setpriv") is None):
        pytest.skip("the non-root variant switches user with setpriv, as root")
    uid = 0 if as_user == "root" else NON_ROOT
    lab = make_lab(image="claude_image", own_name=True, owner=uid or None)
    script = [PROBE_TURN, RAISE_TURN, KEEP_TURN, WORSEN_TURN, DISCARD_TURN, DONE_TURN]
    agent_args = ["--max-turns", "40"]
    sec = Secrets()
    with fake_api(script) as api, host_listener() as seen:
        env = sec.env(api)
        if as_user == "root":
            proc = arl_run(lab, env, "--max-iterations", "2", "--", *agent_args)
        else:
            home = lab.parent / "home"
            full = {"PATH": f"{BIN}:/usr/local/bin:/usr/bin:/bin", "HOME": str(home), **env}
            docker_gid = os.stat("/var/run/docker.sock").st_gid
            cmd = [
                "setpriv",
                f"--reuid={uid}",
                f"--regid={uid}",
                f"--groups={docker_gid}",
                str(BIN / "arl"),
                *RUN_ARGS,
                "--max-iterations",
                "2",
                "--",
                *agent_args,
            ]
            proc = subprocess.run(cmd, cwd=lab, env=full, capture_output=True, text=True, timeout=240)
        main = api.main_requests()
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    assert "stop: max_iterations" in proc.stdout

    # Two experiments through the real CLI, recorded with agent claude; the keep really improved the pipeline.
    rs = check_history(lab, lab_name(lab)) if as_user == "root" else rows(lab)
    assert [r["outcome"] for r in rs] == ["baseline", "keep", "discard"], proc.stdout
    assert all(r["agent"] == "claude" for r in rs)
    assert float(rs[1]["verified_score"]) < float(rs[0]["verified_score"])
    assert "OFFSET +0.35" in rs[1]["notes"] and "far worse" in rs[2]["notes"]
    assert not containers_of(lab)

    # One conversation, one POST per turn, all of them with the key (passed to docker by name only).
    assert [(r.conversation, r.turn) for r in main] == [(0, t) for t in range(5)]
    assert all(r.headers.get("x-api-key") == sec.key for r in main)
    assert all(r.body["model"] == MODEL and r.body["stream"] is True for r in main)

    # What the claude process received, as its Bash tool saw it from /proc/$PPID.
    probe = tool_result_text(main[1])
    head, _, rest = probe.partition("--- environ\n")
    environ_text, _, rest = rest.partition("--- tool env\n")
    tool_env, _, uid_text = rest.partition("--- uid\n")
    comm, cmdline = head.strip().splitlines()[:2]
    assert comm == "claude"
    argv = (
        "claude -p --output-format stream-json --verbose --model claude-sonnet-4-5 "
        "--disallowedTools WebFetch WebSearch --dangerously-skip-permissions"
    )
    assert cmdline.strip() == f"{argv} {' '.join(agent_args)}"
    cli_env = dict(ln.split("=", 1) for ln in environ_text.strip().splitlines() if "=" in ln)
    # The sandbox holds a placeholder; the broker on the host adds the key (the API saw it, above).
    assert cli_env["ANTHROPIC_API_KEY"] == "arl-broker-placeholder" and sec.key not in probe
    assert cli_env["ANTHROPIC_BASE_URL"] == "http://localhost"
    assert cli_env["ANTHROPIC_UNIX_SOCKET"] == "/workspace/broker/broker.sock"
    assert (cli_env.get("IS_SANDBOX") == "1") == (uid == 0) and int(uid_text.split()[0]) == uid
    allowed = ARL_ENV | adapter_env_names(api.url_for("x"), uid) | image_env_names(IMAGE) | {"HOSTNAME", "PWD"}
    assert set(cli_env) <= allowed, f"host variables in the agent's environment: {set(cli_env) - allowed}"
    assert "ARL_CANARY_SECRET" not in cli_env and sec.canary not in probe and "ARL_CANARY_SECRET" not in tool_env
    # Through the broker only the allow-listed API paths: the agent's GET /v1/models was refused and logged by the
    # broker, never reached the API; and nothing else is reachable at all: loopback alone, no route, no host port.
    reach = uid_text.partition("--- reach\n")[2]
    assert "broker GET /v1/models 403" in reach, reach
    reach_checked(reach, seen)
    refused = [json.loads(ln) for ln in (lab / ".arl" / "logs" / "broker.jsonl").read_text().splitlines()]
    assert any(r.get("status") == 403 and "/v1/models" in str(r.get("path")) for r in refused), refused
    assert not [r for r in api.requests if "/v1/models" in r.path and r.method == "GET"]
    # The printed docker lines name the key, never show it; the container got exactly the names above.
    launch = docker_lines(proc.stderr, "+ docker run --sig-proxy=false")
    assert len(launch) == 1 and " --network none " in launch[0]
    assert sec.key not in proc.stderr and sec.key not in proc.stdout
    words = shlex.split(launch[0][2:])
    env_flags = {words[i + 1].split("=", 1)[0] for i, w in enumerate(words) if w == "--env"}
    assert env_flags <= allowed and "ARL_CANARY_SECRET" not in env_flags
    assert sec.canary not in proc.stderr

    # Cost: the usage the server streamed, priced as Claude Code prices it, per experiment and in total.
    expected = served_cost(main)
    assert expected == pytest.approx(priced(script[:5]), abs=1e-12)
    assert costs(lab) == pytest.approx([0.0, priced(script[:3]), priced(script[3:5])], abs=ROUNDED)
    assert sum(costs(lab)) == pytest.approx(expected, abs=2 * ROUNDED)
    # The broker's own count of the same responses: an independent second figure.
    assert usage_cost(lab / ".arl" / "logs" / "broker-usage.jsonl", claude_cost) == pytest.approx(expected, abs=1e-12)
    st = status(lab)
    assert st["active"] is False and st["cost_usd"] == pytest.approx(expected, abs=2e-6)
    assert f"cost ${expected:.4f}" in proc.stdout  # the end-of-run line
    # The agent never ended by itself (frozen at the last verdict, then removed): no result line, arl's own count.
    (log,) = transcripts(lab)
    assert log.name.startswith(f"arl-{lab_name(lab)}-") and log.name.endswith("-r1-agent1.jsonl")
    assert result_lines(log) == []
    assert expected > provisional(script[:5]) * 1.5  # what counting message_start's output would have missed

    # `arl show` has an excerpt of the experiment's transcript (whether it is readable: the test below).
    if as_user == "root":
        assert "transcript (excerpt)" in arl("show", "1", cwd=lab).stdout


def test_show_excerpt_reads_like_the_live_view(lab: Path) -> None:
    sec = Secrets()
    with fake_api([RAISE_TURN, KEEP_TURN, DONE_TURN]) as api:
        proc = arl_run(lab, sec.env(api), "--max-iterations", "1")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    assert "agent tool_call: Bash: arl verdict keep" in proc.stdout  # the live view
    excerpt = arl("show", "1", cwd=lab).stdout.split("transcript (excerpt)")[1]
    # The tool call's first line, as the live view shows it (the adapter shortens a long command).
    assert "agent tool_call: Bash: python3 -c" in excerpt and "arl verdict keep --notes" in excerpt, excerpt
    assert '"stream_event"' not in excerpt


def test_max_cost_stops_the_run(lab: Path) -> None:
    """The budget is a hard limit: the turn that crosses it is the last the API bills. The agent is frozen at once,
    mid-experiment (recorded as interrupted), and the broker refuses whatever it still sends."""
    script = [RAISE_TURN, KEEP_TURN, WORSEN_TURN, DISCARD_TURN, DONE_TURN]
    first = priced(script[:1])
    limit = round(first * 0.9, 6)
    # Between the two: a count at message_start's output tokens would not stop here.
    assert provisional(script[:1]) < limit < first
    sec = Secrets()
    with fake_api(script) as api:
        proc = arl_run(lab, sec.env(api), "--max-iterations", "5", "--max-cost", str(limit))
        main = api.main_requests()
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]  # a limit the user set: no failure
    assert "stop: max_cost" in proc.stdout, proc.stdout
    # frozen before or after its edit: an interrupted attempt is recorded when the edit was made
    outcomes = [r["outcome"] for r in check_history(lab, lab_name(lab))]
    assert outcomes in (["baseline"], ["baseline", "interrupted"]), outcomes
    events = [json.loads(ln) for ln in (lab / ".arl" / "runs.jsonl").read_text().splitlines()]
    stops = [e for e in events if e.get("event") == "stop"]
    assert len(stops) == 1 and stops[0]["reason"].startswith("max_cost"), stops
    assert len(main) == 1  # the crossing turn was the last: its next call was refused or never made
    # the session's cost is in its row when it has one, and in the run's total either way
    assert sum(costs(lab)) == pytest.approx(first if len(outcomes) == 2 else 0.0, abs=ROUNDED)
    assert status(lab)["cost_usd"] == pytest.approx(first, abs=2e-6) and status(lab)["stop_reason"].startswith(
        "max_cost"
    )
    assert not containers_of(lab)


def agent_container(lab: Path) -> str | None:
    out = run(
        ["docker", "ps", "--filter", f"label=arl.root={lab.resolve()}", "--filter", "label=arl.role=agent"]
        + ["--format", "{{.Names}}"]
    ).stdout.split()
    return out[0] if len(out) == 1 else None


def busy_and_logged(name: str) -> bool:
    """The agent is inside its long tool call, and every message it started has been logged to its end."""
    top = subprocess.run(["docker", "top", name], capture_output=True, text=True).stdout
    if "time.sleep" not in top:
        return False
    logs = subprocess.run(["docker", "logs", name], capture_output=True, text=True).stdout
    return logs.count('"type":"message_start"') == logs.count('"type":"message_stop"')


def test_killed_container_crash_relaunch_keeps_the_cost(lab: Path, tmp_path: Path) -> None:
    first = [RAISE_TURN, KEEP_TURN, BUSY_TURN]  # the first process is killed in its long tool call
    later = [RAISE_TURN, KEEP_TURN, DONE_TURN]  # a relaunched one starts over, keeps, then ends by itself
    sec = Secrets()
    out, err = tmp_path / "run.out", tmp_path / "run.err"
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    cmd = [str(BIN / "arl"), "run", "--data", "data", "--agent", "claude", "--model", MODEL]
    cmd += ["--max-iterations", "4", "--plateau-threshold", "0"]
    with fake_api(first, later) as api:
        with open(out, "wb") as o, open(err, "wb") as e:
            proc = subprocess.Popen(cmd, cwd=lab, env={**env, **sec.env(api)}, stdout=o, stderr=e)
        try:
            wait_for(lambda: len(rows(lab)) >= 2, 180, "the first experiment")
            wait_for(lambda: any(r.turn == 2 for r in api.main_requests()), 60, "the agent's next call")
            name = wait_for(lambda: agent_container(lab), 30, "the agent's container")
            wait_for(lambda: busy_and_logged(name), 60, "the agent busy in its tool call")
            run(["docker", "kill", name])
            assert proc.wait(180) == 0, out.read_text()[-3000:] + err.read_text()[-5000:]
        finally:
            if proc.poll() is None:
                proc.terminate()
                proc.wait(60)
        main = api.main_requests()
    stdout = out.read_text()
    assert "stop: max_iterations" in stdout, stdout
    rs = check_history(lab, lab_name(lab))
    # The kill is a crash; the session that said it was done is no experiment: it is relaunched with a preamble.
    assert [r["outcome"] for r in rs][:4] == ["baseline", "keep", "crash", "keep"], stdout
    assert len(rs) == 5 and rs[4]["outcome"] in ("keep", "vetoed"), stdout
    assert all(r["agent"] == "claude" for r in rs)
    assert "exited with code 137" in rs[2]["notes"], rs
    assert "relaunching the agent after its session ended (done)" in stdout
    # Each relaunched agent was a new process that started its conversation over; the keep built on the first.
    turns = [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2), (2, 0), (2, 1)]
    assert [(r.conversation, r.turn) for r in main] == turns
    assert len(main[3].body["messages"]) == 1 and main[0].session != main[3].session
    assert float(rs[3]["verified_score"]) < float(rs[1]["verified_score"]) < float(rs[0]["verified_score"])
    first_message = json.dumps(main[6].body["messages"][0])
    assert "You are a relaunched session" in first_message and "ended (done" in first_message
    assert "You are a relaunched session" not in json.dumps(main[3].body["messages"][0])  # after a crash: a new start

    # One transcript per container start.
    logs = transcripts(lab)
    assert [p.name.rsplit("-", 2)[1:] for p in logs] == [["r1", f"agent{k}.jsonl"] for k in (1, 2, 3)]
    conv0 = [r for r in main if r.conversation == 0]
    conv1 = [r for r in main if r.conversation == 1]  # its DONE turn's cost goes to the next experiment
    # The killed process printed no result line: arl's own count of its stream is the served usage, priced.
    assert result_lines(logs[0]) == []
    assert transcript_cost(logs[0]) == pytest.approx(served_cost(conv0), abs=1e-12)
    # The one that ended by itself reported its own total: the same figure, and arl's running count agrees.
    (final,) = result_lines(logs[1])
    assert final["total_cost_usd"] == pytest.approx(served_cost(conv1), abs=1e-9)
    assert transcript_cost(logs[1], drop_result=True) == pytest.approx(final["total_cost_usd"], abs=1e-9)

    # Per experiment: the first container's cost stays, counted once; the crash rows carry what came after.
    expected = [0.0, priced(first[:2]), priced(first[2:]), priced(later[:2]), priced(later[2:]) + priced(later[:2])]
    assert costs(lab) == pytest.approx(expected, abs=ROUNDED)
    total = served_cost(main)
    assert sum(costs(lab)) == pytest.approx(total, abs=4 * ROUNDED)
    assert status(lab)["cost_usd"] == pytest.approx(total, abs=2e-6)
    assert not containers_of(lab)


def test_no_credentials_fails_at_preflight(example_lab: Path, docker_engine: None, tmp_path: Path) -> None:
    home = tmp_path / "empty-home"
    home.mkdir()
    drop = {"ANTHROPIC_API_KEY", "CLAUDE_CODE_OAUTH_TOKEN", "CLAUDE_CONFIG_DIR", "ANTHROPIC_AUTH_TOKEN"}
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update(HOME=str(home), PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", ARL_BASE_FROM="debootstrap")
    started = time.time()
    proc = subprocess.run(
        [str(BIN / "arl"), "run", "--agent", "claude", "--data", "data"],
        cwd=example_lab,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert proc.stderr == f"arl: error: {NO_CREDENTIALS}\n"
    assert proc.stdout == ""  # no command line printed: nothing was built or launched
    assert not containers_of(example_lab)
    state = example_lab / ".arl" / "state.json"
    assert not state.exists() or not json.loads(state.read_text()).get("active")
    assert not (example_lab / ".arl" / "lock").exists()
    assert time.time() - started < 30


def test_two_labs_of_the_same_name_do_not_touch_each_other(lab: Path, make_lab: LabMaker, tmp_path: Path) -> None:
    """Two checkouts of one lab run at once: the second's launch must not take the first's agent for a leftover
    of its own (container names once derived from the lab's name alone)."""
    name = lab_name(lab)
    twin = make_lab(image="claude_image", settings={"lab": {"name": name}})  # the same lab, another checkout
    sec = Secrets()
    # the first run's agent sits in a long tool call; the twin's (the second conversation) makes one experiment
    with fake_api([BUSY_TURN], [RAISE_TURN, KEEP_TURN, DONE_TURN]) as api:
        env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", **sec.env(api)}
        cmd = [str(BIN / "arl"), "run", "--data", "data", "--agent", "claude", "--model", MODEL]
        with open(tmp_path / "first.log", "wb") as log:
            first = subprocess.Popen(
                [*cmd, "--max-iterations", "5"], cwd=lab, env=env, stdout=log, stderr=subprocess.STDOUT
            )
        try:
            busy = wait_for(lambda: agent_container(lab), 120, "the first lab's agent")
            wait_for(lambda: busy_and_logged(busy), 60, "the first lab's agent busy in its tool call")
            second = arl_run(twin, sec.env(api), "--max-iterations", "1")
            assert second.returncode == 0, second.stdout[-2000:] + second.stderr[-3000:]
            assert [r["outcome"] for r in rows(twin)] == ["baseline", "keep"]
            assert agent_container(lab) == busy, "the twin's launch removed the first lab's agent"
            assert [r["outcome"] for r in rows(lab)] == ["baseline"]
        finally:
            if first.poll() is None:
                first.send_signal(signal.SIGINT)
                first.wait(60)
            cleanup_containers(twin)


def test_partial_message_usage_counts_once_and_final_wins() -> None:
    """The adapter's reading of message_start / message_delta lines (no engine needed; the streams above are real)."""
    start = {"input_tokens": 100, "output_tokens": 1, "cache_read_input_tokens": 50}
    final = {**start, "output_tokens": 400}
    msg = {"id": "msg_1", "model": MODEL, "content": [{"type": "text", "text": "hi"}], "usage": start}
    lines = [
        {"type": "stream_event", "event": {"type": "message_start", "message": {**msg, "content": []}}},
        {"type": "stream_event", "event": {"type": "content_block_delta", "delta": {"text": "message_delta"}}},
        {"type": "assistant", "message": msg},
        # an older CLI without api_message_id: the delta belongs to the message that started last
        {"type": "stream_event", "event": {"type": "message_delta", "usage": {"output_tokens": 400}}},
        {"type": "assistant", "message": msg},  # a block line after the delta repeats the provisional usage
    ]
    adapter, acc = ClaudeAdapter(), StreamAccount()
    events = [e for line in lines for e in adapter.parse_line(json.dumps(line, separators=(",", ":")), acc)]
    assert [e.kind for e in events] == ["usage", "text", "usage", "text"]
    assert adapter.cost(acc) == pytest.approx(claude_cost(MODEL, final), abs=1e-15)
    assert acc.tokens["output_tokens"] == 400 and acc.tokens["input_tokens"] == 100


def outage_lab(lab: Path, **run: float) -> None:
    """Claude Code's own retries cut to one, so that an outage reaches arl in seconds, not minutes."""
    set_toml(lab, "sandbox", "env", ["CLAUDE_CODE_MAX_RETRIES"])
    for key, value in run.items():
        set_toml(lab, "run", key, value)
    git(lab, "commit", "-qam", "outage lab")


def test_an_api_outage_is_waited_out_not_a_crash(lab: Path) -> None:
    outage_lab(lab)
    sec = Secrets()
    # The first process meets only 529s (every retry gets the same turn); the relaunched one finds the API back.
    with fake_api([error_turn(529, "overloaded_error")], [RAISE_TURN, KEEP_TURN, DONE_TURN]) as api:
        env = {**sec.env(api), "CLAUDE_CODE_MAX_RETRIES": "1"}
        proc = arl_run(lab, env, "--max-iterations", "1", "--max-restarts", "0", timeout=300)
        main = api.main_requests()
    out = proc.stdout
    assert proc.returncode == 0, out[-3000:] + proc.stderr[-3000:]
    # No crash row, no iteration spent (the one allowed experiment is the keep), max_restarts 0 not tripped.
    assert [r["outcome"] for r in rows(lab)] == ["baseline", "keep"], out
    assert "waiting for the API (retry in" in out and "stop: max_iterations" in out, out
    assert {r.conversation for r in main} == {0, 1}
    failures = [json.loads(ln) for ln in (lab / ".arl" / "logs" / "broker-usage.jsonl").read_text().splitlines()]
    assert any(f.get("status") == 529 for f in failures), failures  # the broker saw the outage itself
    assert not containers_of(lab)


def test_an_outage_longer_than_the_limit_stops_the_run(lab: Path) -> None:
    outage_lab(lab, max_api_outage_minutes=0.25)
    sec = Secrets()
    with fake_api([error_turn(529, "overloaded_error")]) as api:
        env = {**sec.env(api), "CLAUDE_CODE_MAX_RETRIES": "1"}
        proc = arl_run(lab, env, "--max-iterations", "3", timeout=300)
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]  # a stop for failures, not a limit
    assert "stop: max_api_outage_minutes" in proc.stdout, proc.stdout
    assert [r["outcome"] for r in rows(lab)] == ["baseline"]
    assert not containers_of(lab)
