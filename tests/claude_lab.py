"""What the Claude Code sandbox tests share: the scripted API's turns (each a Bash tool call that makes the agent act),
their prices, the image fixture (each module's lab: its `lab` mark), and helpers to run arl and read what it left."""

from __future__ import annotations

import json
import platform
import secrets
import socket
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from arl.agents.base import AgentContext, StreamAccount
from arl.agents.claude import ClaudeAdapter
from arl.agents.pricing import claude_cost
from arl.config.context import open_lab
from arl.errors import ArlError
from tests.fake_anthropic import FakeAnthropic, Request, Turn, Usage, bash, text

from .conftest import BIN, arl, git, pypi_reachable, run, skip_unless_required
from .loophelpers import Ran, rows, run_arl, set_toml, start
from .slurm_cluster import Cluster


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


MODEL = "claude-sonnet-4-5"
IMAGE = "arl-agent-claude:latest"
NON_ROOT = 4242  # the host user of the non-root variant (as tests/test_sandbox.py)
# Variables arl itself sets in the agent's container (sandbox.py's base env, the control folder, seed, agent kind).
ARL_ENV = {
    "ARL_LAB",
    "ARL_PIPELINE",
    "ARL_DATA",
    "ARL_RESULTS",
    "ARL_OBJECT_FORMAT",
    "ARL_SANDBOX",
    "ARL_CONTROL",
    "ARL_SEED",
    "ARL_AGENT",
    "ARL_SLOT",
    "HOME",
    "PYTHONDONTWRITEBYTECODE",
}
HOST_PORT = _free_port()  # a listener the tests hold on the host, on every address (host_listener)
BRIDGE = "172.17.0.1"  # docker0's default address: where a container on the bridge would find the host
# What the sandbox can reach, checked without sending anything off this machine: its interfaces (/sys/class/net),
# its routes (/proc/net/route, /proc/net/ipv6_route: none but loopback's), and the host's listener on the container's
# loopback (the container's own, not the host's) and on the docker bridge. Python source for `python3 -c "..."`.
REACH = (
    "import os, socket as s\n"
    "print('interfaces:', ' '.join(sorted(os.listdir('/sys/class/net'))))\n"
    "r6 = open('/proc/net/ipv6_route').read().split(chr(10)) if os.path.exists('/proc/net/ipv6_route') else []\n"
    "routes = open('/proc/net/route').read().split(chr(10))[1:] + [r for r in r6 if r.split()[-1:] != ['lo']]\n"
    "print('routes:', len([r for r in routes if r.strip()]))\n"
    f"for h in ('127.0.0.1', '{BRIDGE}'):\n"
    " try:\n"
    f"  s.create_connection((h, {HOST_PORT}), timeout=3); print('host', h, 'connected')\n"
    " except OSError as e:\n"
    "  print('host', h, type(e).__name__)\n"
)


def reach_checked(reach: str, seen: list[str]) -> None:
    """The sandbox has loopback only, no route, and reached no host listener (the host saw no connection)."""
    assert "interfaces: lo\n" in reach and "routes: 0\n" in reach, reach
    assert "connected" not in reach and f"host {BRIDGE} " in reach and seen == [], (reach, seen)


@contextmanager
def host_listener() -> Iterator[list[str]]:
    """A listener on every host address at HOST_PORT (so on loopback and on the docker bridge); yields the peers
    that connected to it."""
    seen: list[str] = []
    srv = socket.create_server(("0.0.0.0", HOST_PORT))
    srv.settimeout(0.2)
    done = threading.Event()

    def accept() -> None:
        while not done.is_set():
            try:
                conn, peer = srv.accept()
            except OSError:
                continue
            seen.append(str(peer))
            conn.close()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield seen
    finally:
        done.set()
        thread.join(5)
        srv.close()


# What its Bash tool shows of the claude process (its parent): the command line, the exact environment, the uid.
PROBE = (
    "cat /proc/$PPID/comm; tr '\\0' ' ' < /proc/$PPID/cmdline; echo; echo '--- environ'; "
    "tr '\\0' '\\n' < /proc/$PPID/environ; echo '--- tool env'; env | sort; echo '--- uid'; id -u; "
    "echo '--- reach'; python3 -c \"import http.client as h, socket as s, os\n"
    "class C(h.HTTPConnection):\n def connect(self):\n  self.sock = s.socket(s.AF_UNIX); "
    "self.sock.connect(os.environ['ANTHROPIC_UNIX_SOCKET'])\n"
    "c = C('localhost'); c.request('GET', '/v1/models'); print('broker GET /v1/models', c.getresponse().status)\n"
    + REACH
    + '"'
)
# OFFSET + 0.35 from wherever it is: an improvement on the example from the baseline (0) and from a kept 0.35.
RAISE = (
    "python3 -c \"import pathlib, re; p = pathlib.Path('model.py'); s = p.read_text(); "
    "v = float(re.search(r'(?m)^OFFSET = (.*)$', s).group(1)); "
    "p.write_text(re.sub(r'(?m)^OFFSET = .*$', 'OFFSET = %.2f' % (v + 0.35), s))\" "
    "&& grep '^OFFSET' model.py && arl eval"
)
WORSEN = "sed -i 's/^OFFSET = .*/OFFSET = -5/' model.py && arl eval"
KEEP = "arl verdict keep --notes 'OFFSET +0.35: the data sit above the curve'"
DISCARD = "arl verdict discard --notes 'OFFSET = -5 is far worse'"
# Claude Code refuses a bare `sleep N`; python sleeps instead (an agent busy in a long tool call)
BUSY = "python3 -c 'import time; time.sleep(600)'"


def u(i: int, o: int, write: int = 0, read: int = 0, write_1h: int = 0) -> Usage:
    return Usage(
        input_tokens=i,
        output_tokens=o,
        cache_creation_input_tokens=write,
        cache_read_input_tokens=read,
        cache_write_1h=write_1h,
    )


# Output tokens are a large part of every turn: the provisional count of message_start (1) would miss most of it.
PROBE_TURN = Turn([text("First, a look at the sandbox."), bash(PROBE, "inspect")], u(2000, 700, 3000, 0))
RAISE_TURN = Turn([text("The data sit above the curve: raise OFFSET."), bash(RAISE, "edit")], u(300, 500, 400, 3000))
KEEP_TURN = Turn([text("Better: propose a keep."), bash(KEEP, "verdict")], u(200, 300, 100, 3400, 100))
WORSEN_TURN = Turn([text("Now try a large negative OFFSET."), bash(WORSEN, "edit, eval")], u(250, 400, 150, 3500))
DISCARD_TURN = Turn([text("Worse: discard it."), bash(DISCARD, "verdict")], u(150, 250, 0, 3650))
BUSY_TURN = Turn([text("A long computation."), bash(BUSY, "compute")], u(100, 350, 50, 3600))
DONE_TURN = Turn([text("I am done.")], u(120, 80, 0, 3700))


def priced(turns: list[Turn], model: str = MODEL) -> float:
    return sum(claude_cost(model, t.usage.as_dict()) for t in turns)


def provisional(turns: list[Turn], model: str = MODEL) -> float:
    """What the turns cost at message_start's output count (what arl saw without the message_delta lines)."""
    return sum(claude_cost(model, {**t.usage.as_dict(), "output_tokens": min(1, t.usage.output_tokens)}) for t in turns)


def served_cost(reqs: list[Request], model: str = MODEL) -> float:
    return sum(claude_cost(model, r.served.usage.as_dict()) for r in reqs if r.served is not None)


# --------------------------------------------------------------------------------------------------- fixtures


# Fixtures are named with `name=`: a test module imports the function (so pytest sees it) under a name no test's
# parameter shadows.
@pytest.fixture(scope="module", name="claude_image")
def claude_image_fixture(docker_engine: None) -> str:
    """arl-agent-claude on a debootstrap base, Claude Code from the claude-agent-sdk wheel (cached by arl)."""
    if platform.system() != "Linux":
        pytest.skip("the sandbox image is built for Linux here")
    from arl.sandbox import images

    try:
        return images.ensure_agent_image("claude", base_from="debootstrap")
    except ArlError:
        if not pypi_reachable():
            skip_unless_required("PyPI is unreachable: cannot fetch Claude Code from the claude-agent-sdk wheel")
        raise


def lab_name(lab: Path) -> str:
    return open_lab(str(lab)).name


def fake_api(*conversations: list[Turn]) -> FakeAnthropic:
    # Loopback only: the agent's container has no network; only the host's broker reaches the API.
    return FakeAnthropic(conversations=list(conversations), host="127.0.0.1")


class Secrets:
    def __init__(self) -> None:
        self.key = f"sk-test-{secrets.token_hex(12)}"
        self.canary = f"canary-{secrets.token_hex(12)}"

    def env(self, api: FakeAnthropic) -> dict[str, str]:
        return {
            "ARL_BASE_FROM": "debootstrap",
            "ANTHROPIC_BASE_URL": api.url_for("127.0.0.1"),  # the broker's upstream
            "ANTHROPIC_API_KEY": self.key,
            "ARL_CANARY_SECRET": self.canary,  # named like arl's own variables: a prefix rule would leak it
        }


# `arl run` as every test here starts it (the agent's plateau never stops a scripted run)
CLAUDE_FLAGS = ["--model", MODEL, "--plateau-threshold", "0"]
RUN_ARGS = ["run", "--data", "data", "--agent", "claude", *CLAUDE_FLAGS]  # for a run started otherwise (setpriv, start)


def arl_run(lab: Path, env: dict[str, str], *args: str, timeout: float = 240) -> Ran:
    return run_arl(lab, *CLAUDE_FLAGS, *args, agent="claude", env=env, timeout=timeout)


class SlurmRun:
    """An `arl run` of Claude Code slots as SLURM jobs, while it runs: the scripted API, the process, its log."""

    def __init__(self, api: FakeAnthropic, proc: subprocess.Popen[bytes], sec: Secrets, log: Path) -> None:
        self.api, self.proc, self.sec, self.log = api, proc, sec, log


@contextmanager
def slurm_run(
    lab: Path, cluster: Cluster, monkeypatch: pytest.MonkeyPatch, agents: int, why: str, **engine: str
) -> Iterator[SlurmRun]:
    """`arl run` on `cluster` with `agents` Claude Code slots (`[engine] kind = "slurm"` and `engine`, committed
    with `why`), each scripted to raise, keep and be done, one experiment each. Killed if still running after."""
    for key, value in cluster.env.items():
        monkeypatch.setenv(key, value)
    set_toml(lab, "run", "agents", agents)
    set_toml(lab, "engine", "kind", "slurm")
    for key, value in engine.items():
        set_toml(lab, "engine", key, value)
    git(lab, "commit", "-qam", why)
    script = [RAISE_TURN, KEEP_TURN, DONE_TURN]
    sec = Secrets()
    log = lab / "run.log"
    with fake_api(*[script] * agents) as api:
        for key, value in sec.env(api).items():
            monkeypatch.setenv(key, value)
        args = [*RUN_ARGS, "--max-iterations", str(agents), "--", "--max-turns", "20"]
        proc = start([str(BIN / "arl"), *args], lab, log)
        try:
            yield SlurmRun(api, proc, sec, log)
        finally:
            if proc.poll() is None:
                proc.kill()


def costs(lab: Path) -> list[float]:
    return [float(r["cost_usd"] or 0) for r in rows(lab)]


ROUNDED = 5e-7 + 1e-12  # results.tsv keeps a row's cost to the micro-dollar


def status(lab: Path) -> dict[str, Any]:
    return json.loads(arl("status", "--json", cwd=lab).stdout)


def transcripts(lab: Path) -> list[Path]:
    return sorted((lab / ".arl" / "logs").glob("*-agent*.jsonl"))


def result_lines(path: Path) -> list[dict[str, Any]]:
    out = []
    for line in path.read_text().splitlines():
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        if isinstance(obj, dict) and obj.get("type") == "result":
            out.append(obj)
    return out


def transcript_cost(path: Path, drop_result: bool = False) -> float:
    """arl's pricing of one saved stream; with drop_result, its own running estimate (no final line to trust)."""
    adapter, acc = ClaudeAdapter(), StreamAccount()
    for line in path.read_text().splitlines():
        if drop_result and '"type":"result"' in line:
            continue
        adapter.parse_line(line, acc)
    return adapter.cost(acc)


def tool_result_text(req: Request) -> str:
    """The tool output a request carries back to the model (its last user message's tool_result)."""
    last = req.body["messages"][-1]
    parts = []
    for block in last["content"] if isinstance(last["content"], list) else []:
        if block.get("type") == "tool_result":
            content = block.get("content")
            if isinstance(content, list):
                content = "\n".join(b.get("text", "") for b in content if isinstance(b, dict))
            parts.append(str(content))
    return "\n".join(parts)


def docker_lines(stderr: str, prefix: str = "+ docker ") -> list[str]:
    return [ln for ln in stderr.splitlines() if ln.startswith(prefix)]


def adapter_env_names(url: str, uid: int) -> set[str]:
    ctx = AgentContext(
        lab_name="curve-fit",
        model=MODEL,
        extra_args=[],
        prompt="",
        host_env={"ANTHROPIC_API_KEY": "k", "ANTHROPIC_BASE_URL": url},
        home=Path("/nonexistent"),
        sandbox_uid=uid,
        network="broker",
        state_dir=Path("/nonexistent/.arl"),
    )
    return set(ClaudeAdapter().launch(ctx).env)


def image_env_names(image: str) -> set[str]:
    out = run(["docker", "image", "inspect", image, "--format", "{{json .Config.Env}}"]).stdout
    return {kv.split("=", 1)[0] for kv in json.loads(out) or []}
