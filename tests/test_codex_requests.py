"""What the real Codex CLI sends, through the real API broker (provider openai, `[agent] allow_web = false`).

tests/streams/codex_request_0.163.0.json holds one request recorded from the real codex binary (0.163.0, from the
openai-codex-cli-bin wheel) against tests/fake_openai.py: its tools are function tools, a `namespace` of function
tools (multi_agent_v1) and, unless codex runs with `-c web_search="disabled"`, the provider's `web_search`. The
broker must let the first through unchanged and refuse the second. Where the codex binary is on this machine
(ARL_TEST_CODEX, or the openai-codex-cli-bin package), codex itself runs through the broker, with loopback only."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from arl.agents.base import AgentContext
from arl.agents.codex import CodexAdapter
from arl.broker.policy import Policy
from arl.broker.process import CODEX_PORT
from arl.broker.serve import request_unix

from .conftest import skip_unless_required
from .fake_openai import FakeOpenAI, Reply
from .test_broker import ROOT, broker, broker_env, work

__all__ = ["work"]

RECORDED = json.loads((ROOT / "tests" / "streams" / "codex_request_0.163.0.json").read_text())


def _upstream(api: FakeOpenAI) -> str:
    return api.base_url.removesuffix("/v1")


def _send(sock: Path, body: dict[str, object]) -> tuple[int, bytes]:
    headers = {**RECORDED["headers"], "authorization": "Bearer arl-broker-placeholder"}
    status, _, raw = request_unix(sock, "POST", "/v1/responses", json.dumps(body).encode(), headers)
    return status, raw


def test_the_recorded_codex_request_passes_and_its_web_search_is_refused(work: Path) -> None:
    tools = [t["type"] for t in RECORDED["body"]["tools"]]
    assert {"function", "namespace", "web_search"} <= set(tools)  # what the recording holds, checked
    env = broker_env(OPENAI_API_KEY="sk-openai-test")
    with FakeOpenAI([Reply("Done.", 100, 0, 5)]) as api, broker(work, _upstream(api), env, "--provider", "openai") as b:
        status, raw = _send(b.sock, RECORDED["body_no_web"])
        assert status == 200, raw[:300]
        posted = [r for r in api.requests if r.method == "POST"]
        assert len(posted) == 1 and posted[0].body["tools"] == RECORDED["body_no_web"]["tools"]  # unchanged
        assert posted[0].headers["authorization"] == "Bearer sk-openai-test"
        status, raw = _send(b.sock, RECORDED["body"])
        assert status == 400 and b"'web_search'" in raw and b"allow_web" in raw, raw[:300]
        assert len([r for r in api.requests if r.method == "POST"]) == 1  # the refused one never reached it
    with (
        FakeOpenAI([Reply("Done.", 100, 0, 5)]) as api,
        broker(work, _upstream(api), env, "--provider", "openai", "--allow-web") as b,
    ):
        assert _send(b.sock, RECORDED["body"])[0] == 200  # [agent] allow_web = true: the user's choice


@pytest.mark.parametrize(
    "tool",
    [
        {"type": "namespace", "name": "n", "tools": [{"type": "function", "name": "f"}, {"type": "web_search"}]},
        {"type": "namespace", "name": "n", "tools": [{"type": "namespace", "name": "m", "tools": []}]},
        {"type": "namespace", "name": "n"},
        {"type": "namespace", "name": "n", "tools": [{"type": "mcp", "server_url": "https://example.invalid"}]},
    ],
)
def test_a_namespace_passes_only_with_the_clients_own_tools_inside(tool: dict[str, object]) -> None:
    body = json.dumps({"model": "gpt-5-codex", "tools": [{"type": "function", "name": "exec_command"}, tool]})
    assert Policy("openai").body_problem(body.encode()) is not None
    assert Policy("anthropic").body_problem(body.encode()) is not None  # no such type there


def codex_binary() -> str | None:
    if os.environ.get("ARL_TEST_CODEX"):
        return os.environ["ARL_TEST_CODEX"]
    try:
        import codex_cli_bin  # type: ignore[import-not-found]  # the openai-codex-cli-bin wheel, when installed
    except ImportError:
        return None
    path = Path(str(codex_cli_bin.__file__)).parent / "bin" / "codex"
    return str(path) if path.is_file() else None


def _launch_line(home: Path, allow_web: bool) -> tuple[list[str], dict[str, str]]:
    """codex's command line and environment as arl's adapter builds them for a brokered container."""
    ctx = AgentContext("lab", "gpt-5-codex", [], "say hi", {"CODEX_API_KEY": "sk-x"}, home, os.getuid())
    ctx.network, ctx.allow_web = "broker", allow_web
    spec = CodexAdapter().launch(ctx)
    argv = spec.argv[spec.argv.index("codex", 3) + 1 :]  # after `sh -c SCRIPT codex`: the program and its flags
    argv[argv.index("-C") + 1] = str(home)
    return argv, {k: v for k, v in spec.env.items() if k in ("CODEX_API_KEY", "OPENAI_BASE_URL")}


def _codex(codex: str, sock: Path, home: Path, allow_web: bool) -> subprocess.CompletedProcess[str]:
    """codex exec, launched as arl launches it, in a network namespace of its own (loopback only: nothing it tries
    can leave this machine); its base URL a loopback port forwarded to the broker's unix socket, as in the agent's
    container."""
    ready = home / "ready"
    ready.unlink(missing_ok=True)
    argv, env = _launch_line(home, allow_web)
    script = (
        "ip link set lo up || exit 1\n"
        f"{sys.executable} -m arl.broker.forward tcp:127.0.0.1:{CODEX_PORT} unix:{sock} {ready} &\n"
        "fwd=$!\n"
        f"while [ ! -e {ready} ]; do sleep 0.01; done\n"
        '"$@" "say hi" </dev/null\n'
        "rc=$?; kill $fwd; exit $rc\n"
    )
    env.update(PATH=f"{Path(codex).parent.parent / 'codex-path'}:/usr/bin:/bin", HOME=str(home), PYTHONPATH=str(ROOT))
    return subprocess.run(
        ["unshare", "--net", "sh", "-c", script, "codex", codex, *argv[1:]],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )


def test_the_real_codex_through_the_broker(work: Path) -> None:
    """arl's launch line makes the real codex work through the broker (its web search off); codex left to its
    default (web search on, as `[agent] allow_web = true` launches it) is refused by a broker without allow_web."""
    codex = codex_binary()
    if codex is None:
        skip_unless_required("no codex binary here (make codex-bin installs the openai-codex-cli-bin package)")
    if os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("ip"):
        skip_unless_required("codex runs in a network namespace of its own (unshare --net, as root): loopback only")
    home = work / "home"
    home.mkdir()
    env = broker_env(OPENAI_API_KEY="sk-openai-test")
    with FakeOpenAI([Reply("Done.", 100, 0, 5)]) as api, broker(work, _upstream(api), env, "--provider", "openai") as b:
        launched = _codex(codex, b.sock, home, allow_web=False)
        posted = [r for r in api.requests if r.method == "POST"]
        assert '"type":"turn.completed"' in launched.stdout, launched.stdout[-2000:] + launched.stderr[-2000:]
        assert posted and all(r.path == "/v1/responses" for r in posted)
        kinds = {t["type"] for r in posted for t in r.body["tools"]}
        assert kinds <= {"function", "namespace"} and "function" in kinds, kinds
        assert all(r.headers["authorization"] == "Bearer sk-openai-test" for r in posted)
        default = _codex(codex, b.sock, home, allow_web=True)  # codex's own default: its web_search tool, refused
        assert len([r for r in api.requests if r.method == "POST"]) == len(posted), default.stdout[-2000:]
    refusals = [json.loads(line) for line in b.log.read_text().splitlines()]
    assert any(r["status"] == 400 and r.get("reason") == "refused body" for r in refusals), refusals[-5:]
    assert "web_search" in default.stdout + default.stderr, default.stdout[-2000:] + default.stderr[-2000:]
