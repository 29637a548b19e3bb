"""The agent adapters on recorded streams, their launch lines and credentials, the registry and the prompt.

tests/streams/claude_*.jsonl are the real Claude Code CLI's output against tests/fake_anthropic.py, recorded by
tests/streams/record_claude.py (claude_noise.jsonl adds noise lines to the success stream). codex_*.jsonl are
written by hand after openai/codex's codex-rs/exec/src/exec_events.rs (the ThreadEvent / ThreadItem types) and the
sample output in its docs/exec.md; codex_legacy.jsonl is that first sample's shape (item_type, assistant_message)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path

import pytest

from arl.agents import claude_auth as claude_mod
from arl.agents.base import AgentContext, Event, StreamAccount, get_adapter
from arl.agents.claude import ClaudeAdapter, estimate
from arl.agents.codex import CodexAdapter
from arl.agents.command import CommandAdapter
from arl.agents.pricing import claude_cost, claude_rates, openai_cost, openai_rates
from arl.agents.prompt import build_prompt
from arl.errors import ArlError

STREAMS = Path(__file__).parent / "streams"
SONNET = "claude-sonnet-4-5"


def feed(adapter: object, name: str) -> tuple[list[Event], StreamAccount]:
    acc, events = StreamAccount(), []
    for line in (STREAMS / name).read_text().splitlines(keepends=True):
        events += adapter.parse_line(line, acc)  # type: ignore[attr-defined]
    return events, acc


def kinds(events: list[Event]) -> str:
    return " ".join(e.kind for e in events)


def last_result(name: str) -> dict:
    return [json.loads(x) for x in (STREAMS / name).read_text().splitlines() if '"type":"result"' in x][-1]


def test_claude_success_stream() -> None:
    events, acc = feed(ClaudeAdapter(), "claude_success.jsonl")
    assert kinds(events) == "started text usage tool_call tool_result text usage final"
    assert events[3].text == "Bash: echo hello" and events[4].text == "hello"
    assert acc.model == SONNET and acc.events == len(events)
    final = last_result("claude_success.jsonl")
    assert ClaudeAdapter().cost(acc) == final["total_cost_usd"] == pytest.approx(0.016305)
    # the table is Claude Code's: its total is the run's usage priced by pricing.py
    assert claude_cost(SONNET, final["usage"]) == pytest.approx(final["total_cost_usd"], abs=1e-12)
    assert ClaudeAdapter().end_class(acc, 0) == "done"
    assert acc.tokens["input_tokens"] == 2200 and acc.tokens["output_tokens"] == 70


def test_claude_noise_is_ignored() -> None:
    noisy, acc = feed(ClaudeAdapter(), "claude_noise.jsonl")
    clean, _ = feed(ClaudeAdapter(), "claude_success.jsonl")
    assert [(e.kind, e.text) for e in noisy] == [(e.kind, e.text) for e in clean]
    assert ClaudeAdapter().end_class(acc, 0) == "done"
    for junk in ["", "\n", "{", "null", "[1]", '{"type": "assistant", "message": 3}', '{"type":"user","message":{}}']:
        assert ClaudeAdapter().parse_line(junk, StreamAccount()) == []


def test_claude_killed_estimates_from_deduplicated_usage() -> None:
    events, acc = feed(ClaudeAdapter(), "claude_killed.jsonl")
    assert kinds(events) == "started text usage tool_call tool_result"
    lines = [json.loads(x) for x in (STREAMS / "claude_killed.jsonl").read_text().splitlines()]
    repeats = [x["message"]["usage"] for x in lines if x["type"] == "assistant"]
    assert len(repeats) == 2 and repeats[0] == repeats[1]  # one message, two blocks, the usage repeated
    once = claude_cost(SONNET, repeats[0])
    assert estimate(acc) == pytest.approx(once) and ClaudeAdapter().cost(acc) == pytest.approx(once)
    assert sum(claude_cost(SONNET, u) for u in repeats) != pytest.approx(once)  # summing would double it
    assert acc.reported_cost is None and acc.final is None
    for code in (None, 143, 137, -15):
        assert ClaudeAdapter().end_class(acc, code) == "killed"
    assert ClaudeAdapter().end_class(acc, 124) == "timeout"
    assert ClaudeAdapter().end_class(acc, 1) == "error"


@pytest.mark.parametrize(
    ("name", "end", "retries"),
    [
        (f"claude_{n}.jsonl", e, r)
        for n, e, r in [
            ("max_turns", "limit", 0),
            ("budget", "limit", 0),
            ("api_error", "error", 2),
            ("retry_ok", "done", 1),
            ("interrupted", "killed", 0),
        ]
    ],
)
def test_claude_end_classes(name: str, end: str, retries: int) -> None:
    events, acc = feed(ClaudeAdapter(), name)
    final = last_result(name)
    assert ClaudeAdapter().end_class(acc, 1) == end
    assert kinds(events).split().count("retry") == retries and kinds(events).endswith("final")
    assert ClaudeAdapter().cost(acc) == final["total_cost_usd"]
    if name == "claude_api_error.jsonl":  # an API error ends with subtype success: is_error decides
        assert final["subtype"] == "success" and final["is_error"] is True and acc.is_error
        assert "401" in events[1].text and acc.usage_by_message == {}  # the synthetic message costs nothing


OUTAGES = [(529, "api_error"), (500, "api_error"), (429, "api_error"), (None, "api_error")]
OUTAGES += [(401, "error"), (400, "error")]  # not cured by waiting: a crash


@pytest.mark.parametrize(("status", "end"), OUTAGES)
def test_claude_api_errors_that_waiting_cures_are_outages(status: int | None, end: str) -> None:
    """The recorded 401 ends as an error (a crash); the same end with an overload or no answer is an outage."""
    lines = (STREAMS / "claude_api_error.jsonl").read_text().splitlines()
    final = {**json.loads(lines[-1]), "api_error_status": status}
    acc, adapter = StreamAccount(), ClaudeAdapter()
    for line in [*lines[:-1], json.dumps(final)]:
        adapter.parse_line(line, acc)
    assert adapter.end_class(acc, 1) == end


def test_claude_usage_replaced_not_added_within_a_message() -> None:
    acc, adapter = StreamAccount(), ClaudeAdapter()
    usage = {"input_tokens": 1000, "output_tokens": 1, "cache_read_input_tokens": 0, "cache_creation_input_tokens": 0}
    for block in ({"type": "text", "text": "a"}, {"type": "tool_use", "name": "Read", "input": {"file_path": "/x"}}):
        line = {"type": "assistant", "message": {"id": "m1", "model": SONNET, "content": [block], "usage": usage}}
        adapter.parse_line(json.dumps(line), acc)
    later = {**usage, "output_tokens": 400}
    line = {"type": "assistant", "message": {"id": "m1", "model": SONNET, "content": [], "usage": later}}
    assert kinds(adapter.parse_line(json.dumps(line), acc)) == "usage"
    assert estimate(acc) == pytest.approx((1000 * 3 + 400 * 15) / 1e6)
    assert acc.tokens["output_tokens"] == 400


def test_codex_streams() -> None:
    events, acc = feed(CodexAdapter(), "codex_success.jsonl")
    assert kinds(events) == "started tool_call tool_result tool_call tool_call tool_result text usage final"
    assert events[1].text == "shell: bash -lc 'arl eval'" and events[3].text.startswith("edit: /workspace/pipeline")
    assert acc.model == "gpt-5-codex" and acc.tokens["cached_input_tokens"] == 24448
    assert CodexAdapter().cost(acc) == pytest.approx(((24763 - 24448) * 1.25 + 24448 * 0.125 + 122 * 10) / 1e6)
    assert CodexAdapter().end_class(acc, 0) == "done"
    events, acc = feed(CodexAdapter(), "codex_failed.jsonl")
    assert kinds(events) == "started retry retry text final"
    assert CodexAdapter().end_class(acc, 1) == "error" and CodexAdapter().cost(acc) == 0
    _, acc = feed(CodexAdapter(), "codex_limit.jsonl")
    assert CodexAdapter().end_class(acc, 1) == "limit"
    events, acc = feed(CodexAdapter(), "codex_killed.jsonl")
    assert kinds(events) == "started tool_call" and CodexAdapter().end_class(acc, None) == "killed"
    events, acc = feed(CodexAdapter(), "codex_legacy.jsonl")
    assert kinds(events) == "started tool_call tool_result text usage final"
    assert CodexAdapter().cost(acc) == pytest.approx(openai_cost("gpt-5.5", acc.tokens))  # no model: dearest tier


def test_codex_usage_is_a_running_total() -> None:
    acc, adapter = StreamAccount(model="gpt-5"), CodexAdapter()
    for n in (100, 250):
        adapter.parse_line(
            json.dumps({"type": "turn.completed", "usage": {"input_tokens": n, "output_tokens": n}}), acc
        )
    assert acc.tokens == {"input_tokens": 250, "cached_input_tokens": 0, "output_tokens": 250}


def test_pricing_tables() -> None:
    assert claude_rates("claude-sonnet-4-5-20250929").input == 3
    assert claude_rates("us.anthropic.claude-opus-4-1-20250805-v1:0").output == 75
    assert claude_rates("claude-opus-4-5").output == 25 and claude_rates("claude-haiku-4-5@20251001").input == 1
    assert claude_rates("claude-sonnet-4-5[1m]").cache_read == pytest.approx(0.3)
    assert claude_rates("some-gateway-model").input == 5  # Claude Code's default for models it does not know
    one_hour = {
        "input_tokens": 0,
        "cache_creation_input_tokens": 1000,
        "cache_creation": {"ephemeral_1h_input_tokens": 400, "ephemeral_5m_input_tokens": 600},
    }
    assert claude_cost(SONNET, one_hour) == pytest.approx((400 * 6 + 600 * 3.75) / 1e6)
    assert claude_cost("claude-haiku-5-5", {"input_tokens": 200_000}) == pytest.approx(200_000 * 0.5 / 1e6)
    assert openai_rates("gpt-5.2-codex").output == 14 and openai_rates("gpt-5.1-codex-max").input == 1.25
    assert openai_rates("gpt-5.9").output == 30  # unknown: the dearest tier, so max_cost stops early, not late


def ctx(tmp_path: Path, env: dict[str, str] | None = None, **kw: object) -> AgentContext:
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    base: dict = dict(
        lab_name="my lab",
        model="claude-sonnet-4-5",
        extra_args=[],
        prompt="p",
        host_env=env or {},
        home=home,
        sandbox_uid=1000,
        state_dir=tmp_path / ".arl",
    )
    return AgentContext(**{**base, **kw})


def write_credentials(c: AgentContext) -> Path:
    creds = c.home / ".claude" / ".credentials.json"
    creds.parent.mkdir(parents=True, exist_ok=True)
    creds.write_text('{"claudeAiOauth": {"accessToken": "a", "expiresAt": 1}}')
    return creds


def test_claude_launch_line(tmp_path: Path) -> None:
    env = {"ANTHROPIC_API_KEY": "sk-1", "ANTHROPIC_BASE_URL": "http://gw:8080", "HOME": "/root", "PATH": "/bin"}
    spec = ClaudeAdapter().launch(ctx(tmp_path, env, extra_args=["--allowedTools", "Bash"], sandbox_uid=0))
    line = "claude -p --output-format stream-json --verbose --model claude-sonnet-4-5 "
    assert " ".join(spec.argv) == line + (
        "--disallowedTools WebFetch WebSearch --dangerously-skip-permissions --allowedTools Bash"
    )
    quiet = {
        "DISABLE_AUTOUPDATER": "1",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "CLAUDE_CODE_INCLUDE_PARTIAL_MESSAGES": "1",  # message_delta lines: the final output counts
    }
    assert spec.env == {"ANTHROPIC_API_KEY": "sk-1", "ANTHROPIC_BASE_URL": "http://gw:8080", "IS_SANDBOX": "1", **quiet}
    assert spec.stdin_prompt and spec.image_layer == "claude" and spec.secrets == ["ANTHROPIC_API_KEY"]
    spec = ClaudeAdapter().launch(ctx(tmp_path, {"ANTHROPIC_API_KEY": "k"}, model=""))
    assert "--model" not in spec.argv and "IS_SANDBOX" not in spec.env and "ANTHROPIC_BASE_URL" not in spec.env


def test_claude_credentials_order(tmp_path: Path) -> None:
    both = {"ANTHROPIC_API_KEY": "sk", "CLAUDE_CODE_OAUTH_TOKEN": "oat"}
    c = ctx(tmp_path, both)
    creds = write_credentials(c)
    assert ClaudeAdapter().launch(c).auth.startswith("ANTHROPIC_API_KEY")
    spec = ClaudeAdapter().launch(ctx(tmp_path, {"CLAUDE_CODE_OAUTH_TOKEN": "oat"}))
    assert spec.auth.startswith("CLAUDE_CODE_OAUTH_TOKEN") and spec.env["CLAUDE_CODE_OAUTH_TOKEN"] == "oat"
    assert "ANTHROPIC_API_KEY" not in spec.env and spec.mounts == []
    spec = ClaudeAdapter().launch(ctx(tmp_path, {}))
    assert str(creds) in spec.auth and spec.env["CLAUDE_CONFIG_DIR"] == claude_mod.CONFIG_DIR
    folder = tmp_path / ".arl" / "claude"
    mounts = [(folder, claude_mod.CONFIG_DIR, False), (creds, f"{claude_mod.CONFIG_DIR}/.credentials.json", False)]
    assert [(m.host, m.container, m.read_only) for m in spec.mounts] == mounts
    placeholder = folder / ".credentials.json"  # the nested mount point exists, the user's, so docker creates none
    assert placeholder.read_text() == "" and stat.S_IMODE(placeholder.stat().st_mode) == 0o600
    creds.unlink()
    with pytest.raises(ArlError) as e:
        ClaudeAdapter().launch(ctx(tmp_path, {"HOME": str(tmp_path)}))
    for name in ("ANTHROPIC_API_KEY", "CLAUDE_CODE_OAUTH_TOKEN", ".credentials.json", "--use-oauth-osx"):
        assert name in str(e.value)
    assert "\n" not in str(e.value)


def test_claude_macos_keychain(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(claude_mod.sys, "platform", "linux")
    with pytest.raises(ArlError, match="macOS keychain"):
        ClaudeAdapter().launch(ctx(tmp_path, {"ANTHROPIC_API_KEY": "k"}, use_oauth_osx=True))
    monkeypatch.setattr(claude_mod.sys, "platform", "darwin")
    secret = {"claudeAiOauth": {"accessToken": "kc", "expiresAt": 100}}
    monkeypatch.setattr(claude_mod, "read_keychain", lambda: json.dumps(secret))
    spec = ClaudeAdapter().launch(ctx(tmp_path, {}, use_oauth_osx=True))
    copy = tmp_path / ".arl" / "claude" / ".credentials.json"
    assert "keychain" in spec.auth and json.loads(copy.read_text()) == secret
    assert stat.S_IMODE(copy.stat().st_mode) == 0o600 and [m.container for m in spec.mounts] == [claude_mod.CONFIG_DIR]
    refreshed = {"claudeAiOauth": {"accessToken": "fresh", "expiresAt": 200}}  # the sandbox refreshed its copy
    copy.write_text(json.dumps(refreshed))
    ClaudeAdapter().launch(ctx(tmp_path, {}, use_oauth_osx=True))
    assert json.loads(copy.read_text()) == refreshed


def test_codex_launch(tmp_path: Path) -> None:
    with pytest.raises(ArlError, match="CODEX_API_KEY"):
        CodexAdapter().launch(ctx(tmp_path, {}))
    spec = CodexAdapter().launch(ctx(tmp_path, {"CODEX_API_KEY": "ck"}, model="gpt-5-codex", extra_args=["-c", "x=1"]))
    assert spec.argv[:2] == ["sh", "-c"] and spec.argv[3] == "codex"
    line = "codex exec --json --ephemeral --skip-git-repo-check -m gpt-5-codex "
    line += "--dangerously-bypass-approvals-and-sandbox -C /workspace/pipeline "
    assert " ".join(spec.argv[4:]) == line + '-c web_search="disabled" -c x=1'  # the broker refuses web_search
    assert spec.env["CODEX_API_KEY"] == "ck" and spec.secrets == ["CODEX_API_KEY"] and not spec.stdin_prompt
    # the wrapper: the model line first, then the program with the prompt file's text as its last argument
    prompt = tmp_path / "prompt.md"
    prompt.write_text("You are 'quoted' $HOME\nline two")
    shell = spec.argv[2].replace("/workspace/control/prompt.md", str(prompt))
    argv = ["sh", "-c", shell, "codex", "python3", "-c", "import sys, json; print(json.dumps(sys.argv[1:]))", "A"]
    out = subprocess.run(argv, env={**os.environ, **spec.env}, capture_output=True, text=True, check=True).stdout
    first, second = out.splitlines()
    assert json.loads(first) == {"type": "arl.model", "model": "gpt-5-codex"}
    assert json.loads(second) == ["A", "You are 'quoted' $HOME\nline two"]


def test_command_adapter(tmp_path: Path) -> None:
    with pytest.raises(ArlError, match=r"\[agent\] command"):
        CommandAdapter().launch(ctx(tmp_path, {}))
    spec = CommandAdapter().launch(ctx(tmp_path, {}, command=["python", "agent.py"], extra_args=["-v"]))
    assert spec.argv == ["python", "agent.py", "-v"] and spec.env["ARL_PROMPT_FILE"] == "/workspace/control/prompt.md"
    acc = StreamAccount()
    assert [e.text for e in CommandAdapter().parse_line("hello\n", acc)] == ["hello"]
    assert CommandAdapter().parse_line("  \n", acc) == [] and CommandAdapter().cost(acc) == 0
    assert [CommandAdapter().end_class(acc, c) for c in (0, 2, None, 137)] == ["done", "error", "killed", "killed"]


class MyAdapter(CommandAdapter):
    name = "mine"


def test_registry() -> None:
    names = [type(get_adapter(k)).__name__ for k in ("claude", "codex", "command")]
    assert names == ["ClaudeAdapter", "CodexAdapter", "CommandAdapter"]
    assert get_adapter("offline").name == "offline"
    assert get_adapter("tests.test_agents_parse:MyAdapter").name == "mine"
    assert get_adapter("tests.test_agents_parse.MyAdapter").name == "mine"
    with pytest.raises(ArlError, match="claude, codex, command, offline"):
        get_adapter("gpt")
    with pytest.raises(ArlError, match="no class"):
        get_adapter("tests.test_agents_parse:Nope")
    with pytest.raises(ArlError, match="cannot import"):
        get_adapter("no_such_pkg.mod:Cls")
    with pytest.raises(ArlError, match="not an agent adapter"):
        get_adapter("pathlib:PurePath")


def test_prompt() -> None:
    text = build_prompt("Tune the filter.", "Try wavelets.", "lab-x", "maximize")
    wanted = "/workspace/pipeline|/workspace/data|/workspace/lab|/workspace/results.tsv|arl eval|arl diagnose|"
    wanted += "arl results|arl verdict keep|higher is better|restores the pipeline|Tune the filter.|Try wavelets.|lab-x"
    assert [w for w in wanted.split("|") if w not in text] == []
    assert text.index("arl verdict") < text.index("Tune the filter.") < text.index("Try wavelets.")
    bare = build_prompt("", "", "l", "minimize")
    assert "lower is better" in bare and "For this run" not in bare and "(AGENT.md)" not in bare
