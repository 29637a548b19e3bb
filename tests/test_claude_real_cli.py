"""The real Claude Code CLI, run on the host (no docker) with the claude adapter's own launch line, against the
scripted API server: its Bash tool really runs, the server sees the key, and the adapter reads the CLI's real
output to the cost the script implies, priced as Claude Code prices it.

The binary comes from the claude-agent-sdk wheel on PyPI, cached by the image builder's code under
~/.cache/arl/claude/ (ARL_CLAUDE_BIN points at another one). Skipped only when PyPI cannot be reached."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path

import pytest

from arl.agents.base import AgentContext, StreamAccount
from arl.agents.claude import ClaudeAdapter
from arl.agents.prompt import build_prompt
from arl.errors import ArlError
from tests.conftest import pypi_reachable, skip_unless_required
from tests.fake_anthropic import FakeAnthropic, Turn, Usage, bash, text

# USD per million tokens: input, output, 5-minute cache write, 1-hour cache write, cache read (Anthropic's list
# prices, written out here independently of arl/agents/pricing.py)
RATES = {
    "claude-sonnet-4-5": (3, 15, 3.75, 6, 0.3),
    "claude-opus-4-5": (5, 25, 6.25, 10, 0.5),
    "claude-haiku-4-5": (1, 5, 1.25, 2, 0.1),
    "claude-opus-5-5": (4, 20, 5, 8, 0.2),  # a tier whose cache reads are 0.05x input, not 0.1x
}
# Retired models are served as another (claude-opus-4-1 runs as claude-opus-5-5 with this CLI): the ones above are
# not remapped, so the script's model is the model priced.
TURN1 = Usage(input_tokens=1000, output_tokens=50, cache_creation_input_tokens=2000, cache_read_input_tokens=300)
TURN2 = Usage(
    input_tokens=1200,
    output_tokens=20,
    cache_creation_input_tokens=100,
    cache_read_input_tokens=2300,
    cache_write_1h=100,
)


def scripted_cost(model: str) -> float:
    i, o, w5, w1h, r = RATES[model]
    total = 0.0
    for u in (TURN1, TURN2):
        five = u.cache_creation_input_tokens - u.cache_write_1h
        total += u.input_tokens * i + u.output_tokens * o + five * w5 + u.cache_write_1h * w1h
        total += u.cache_read_input_tokens * r
    return total / 1e6


def claude_binary() -> Path:
    """Claude Code from arl's cache, fetched from the claude-agent-sdk wheel the first time."""
    if os.environ.get("ARL_CLAUDE_BIN"):
        return Path(os.environ["ARL_CLAUDE_BIN"])
    from arl.sandbox.images import cache_dir
    from arl.sandbox.images_debootstrap import claude_binary as fetch

    arch = {"x86_64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(platform.machine(), platform.machine())
    try:
        return fetch(cache_dir(), arch) / "claude"
    except ArlError:
        if not pypi_reachable():
            skip_unless_required("PyPI is unreachable: cannot fetch Claude Code from the claude-agent-sdk wheel")
        raise


@pytest.fixture(scope="module")
def claude() -> Path:
    if platform.system() != "Linux":
        pytest.skip("the wheel's bundled Claude Code is fetched for Linux here")
    return claude_binary()


def run_claude(
    claude: Path, api: FakeAnthropic, model: str, tmp_path: Path, task: str, extra_args: list[str] | None = None
) -> tuple[StreamAccount, int]:
    ctx = AgentContext(
        lab_name="real-cli",
        model=model,
        extra_args=extra_args or [],
        prompt=build_prompt("", task, "real-cli", "minimize"),
        host_env={"ANTHROPIC_API_KEY": "test-key", "ANTHROPIC_BASE_URL": api.base_url},
        home=tmp_path,
        sandbox_uid=os.getuid(),
        state_dir=tmp_path / ".arl",
    )
    adapter = ClaudeAdapter()
    spec = adapter.launch(ctx)
    assert (
        spec.stdin_prompt
        and spec.argv[0] == "claude"
        and spec.argv[len(spec.argv) - len(ctx.extra_args) :] == ctx.extra_args
    )
    home = tmp_path / "home"
    home.mkdir()
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home), **spec.env}
    proc = subprocess.run(
        [str(claude), *spec.argv[1:]],
        input=ctx.prompt,
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
    )
    (tmp_path / "stream.jsonl").write_text(proc.stdout)
    acc = StreamAccount()
    for line in proc.stdout.splitlines():
        adapter.parse_line(line, acc)
    assert acc.final is not None, (
        f"no result line; exit {proc.returncode}\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
    )
    return acc, proc.returncode


@pytest.mark.parametrize("model", list(RATES))
def test_real_claude_code_runs_the_scripted_tool_and_costs_what_it_said(claude: Path, tmp_path: Path, model: str):
    marker = tmp_path / "marker.txt"
    script = [
        Turn([text("I will write the marker."), bash(f"echo arl-was-here > {marker}")], TURN1),
        Turn([text("The marker is written.")], TURN2),
    ]
    with FakeAnthropic(script) as api:
        acc, code = run_claude(claude, api, model, tmp_path, "Write the marker file.")
    assert marker.read_text().strip() == "arl-was-here"
    main = api.main_requests()
    assert len(main) == 2 and all(r.headers.get("x-api-key") == "test-key" for r in main)
    assert all(r.body["model"] == model and r.body["stream"] is True for r in main)
    # the tool's output went back to the model in the second request
    assert "tool_result" in str(main[1].body["messages"][-1]["content"])
    adapter = ClaudeAdapter()
    assert code == 0 and adapter.end_class(acc, code) == "done"
    assert acc.final is not None and acc.final["total_cost_usd"] == pytest.approx(scripted_cost(model), abs=1e-9)
    assert adapter.cost(acc) == pytest.approx(scripted_cost(model), abs=1e-9)
    # arl's own pricing of the run's total usage agrees with Claude Code to the last digit
    from arl.agents.pricing import claude_cost

    assert claude_cost(model, acc.final["usage"]) == pytest.approx(scripted_cost(model), abs=1e-9)


def test_real_claude_code_max_turns_is_a_limit(claude: Path, tmp_path: Path) -> None:
    script = [Turn([text("Step one."), bash("true")], TURN1), Turn([text("Never reached.")], TURN2)]
    with FakeAnthropic(script) as api:
        acc, code = run_claude(claude, api, "claude-sonnet-4-5", tmp_path, "go", ["--max-turns", "1"])
    assert ClaudeAdapter().end_class(acc, code) == "limit" and acc.is_error and code != 0
    assert len(api.main_requests()) == 1
