"""Re-records tests/streams/claude_*.jsonl: the real Claude Code CLI, run on the host against tests/fake_anthropic.py.

    .venv/bin/python tests/streams/record_claude.py [PATH/TO/claude]

Without a path it takes the binary from arl's cache (~/.cache/arl/claude/, fetched from the claude-agent-sdk wheel
when missing). Each stream is the CLI's stdout, verbatim, except claude_noise.jsonl: the success stream with
non-JSON and unknown lines inserted by this script, as a terminal, a wrapper or a future CLI might print them.
The scripted usage numbers are in SCRIPTS; tests/test_agents_parse.py prices them independently."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))

from tests.fake_anthropic import FakeAnthropic, Turn, Usage, bash, error_turn, text  # noqa: E402

MODEL = "claude-sonnet-4-5"
SUCCESS = [
    Turn([text("I will run it."), bash("echo hello")], Usage(1000, 50, 2000, 300)),
    Turn([text("All done: it printed hello.")], Usage(1200, 20, 100, 2300)),
]
SLOW = [Turn([text("Waiting."), bash("python3 -c 'import time; time.sleep(30)'")], Usage(3000, 40, 500, 0)), *SUCCESS]
SCRIPTS: dict[str, tuple[list[Turn], list[str], dict[str, str]]] = {
    "success": (SUCCESS, [], {}),
    "max_turns": (SUCCESS, ["--max-turns", "1"], {}),
    "budget": (SUCCESS, ["--max-budget-usd", "0.001"], {}),
    # 401 is retried like a transient error: api_retry lines, then a synthetic error message and is_error
    "api_error": ([error_turn(401, "authentication_error")] * 3, [], {"CLAUDE_CODE_MAX_RETRIES": "2"}),
    "retry_ok": (
        [error_turn(529, "overloaded_error"), Turn([text("Recovered.")], Usage(10, 5))],
        [],
        {"CLAUDE_CODE_MAX_RETRIES": "2"},
    ),
    # stopped while its Bash tool runs (Claude Code refuses a bare `sleep N`, so python sleeps): SIGTERM ends it
    # with no result line; SIGINT makes it cancel the tool and still print a result line
    "killed": (SLOW, [], {}),
    "interrupted": (SLOW, [], {}),
}
STOP_SIGNAL = {"killed": signal.SIGTERM, "interrupted": signal.SIGINT}
NOISE = [
    "",
    "Warning: a line a wrapper printed",
    "{not json at all",
    '["a", "json", "array"]',
    '{"type":"system","subtype":"hook_response","note":"an unknown system line"}',
    '{"type":"something_new","x":1}',
    "42",
]


def host_env(base_url: str, extra: dict[str, str], home: str) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "TERM")}
    return {
        **keep,
        "HOME": home,
        "ANTHROPIC_BASE_URL": base_url,
        "ANTHROPIC_API_KEY": "test-key",
        "IS_SANDBOX": "1",
        "DISABLE_AUTOUPDATER": "1",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        **extra,
    }


def record(claude: str, name: str) -> str:
    script, args, extra = SCRIPTS[name]
    argv = [
        claude,
        "-p",
        "--output-format",
        "stream-json",
        "--verbose",
        "--model",
        MODEL,
        "--dangerously-skip-permissions",
        *args,
    ]
    with FakeAnthropic(script) as api, tempfile.TemporaryDirectory() as home:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=home,
            env=host_env(api.base_url, extra, home),
        )
        assert proc.stdin and proc.stdout
        proc.stdin.write("Run echo hello, then say done.\n")
        proc.stdin.close()
        lines, stop = [], STOP_SIGNAL.get(name)
        for line in proc.stdout:
            lines.append(line)
            if stop and '"type":"tool_use"' in line:
                time.sleep(1)  # let the tool start, then stop it the way docker --init relays a stop
                proc.send_signal(stop)
                stop = None
        proc.wait(timeout=120)
        print(
            f"{name}: exit {proc.returncode}, {len(lines)} lines, requests:",
            [f"{r.method} {r.path} {'main' if r.main else 'side'}" for r in api.requests],
        )
        return "".join(lines)


def main() -> None:
    if len(sys.argv) > 1:
        claude = sys.argv[1]
    else:
        from tests.test_claude_real_cli import claude_binary

        claude = str(claude_binary())
    for name in SCRIPTS:
        out = record(claude, name)
        (HERE / f"claude_{name}.jsonl").write_text(out)
        if name == "success":
            lines = out.splitlines(keepends=True)
            mixed = [lines[0], *(n + "\n" for n in NOISE[:4]), *lines[1:-1], *(n + "\n" for n in NOISE[4:]), lines[-1]]
            (HERE / "claude_noise.jsonl").write_text("".join(mixed))


if __name__ == "__main__":
    main()
