"""The API broker's limits, against a real broker process (as a run starts it: arl.agents.brokered) and the fake API:
strict heads, no provider-side tools, the run's models, the run's budget, and floods that one slot cannot turn into
the host's problem or another slot's."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from arl.agents.pricing import claude_cost
from arl.broker.broker import request_unix
from arl.broker.serve import MAX_CONNECTIONS
from tests.fake_anthropic import FakeAnthropic, Turn, Usage, text
from tests.loophelpers import wait_for
from tests.test_broker import CLIENT_HEADERS, ROOT, broker_env, lines, message, raw_exchange, work

__all__ = ["work"]  # the fixture, shared with test_broker

KEY = "sk-ant-limits-test-key"
TURN = Usage(input_tokens=1000, output_tokens=1000)  # $0.018 at claude-sonnet-4-5's rates


@dataclass
class Brk:
    proc: subprocess.Popen[bytes]
    socks: list[Path]
    log: Path
    usage: Path
    spent: Path


@contextmanager
def brokered(work: Path, upstream: str, slots: int = 1, *args: str) -> Iterator[Brk]:
    socks = [work / f"s{k}.sock" for k in range(slots)]
    log, usage, spent = work / "log.jsonl", work / "usage.jsonl", work / "spent.json"
    argv = [sys.executable, "-m", "arl.agents.brokered", "--upstream", upstream, "--log", str(log)]
    argv += ["--usage", str(usage), "--spent-file", str(spent), *args]
    for s in socks:
        argv += ["--socket", str(s)]
    with open(work / "stderr", "wb") as err:
        proc = subprocess.Popen(argv, cwd=ROOT, env=broker_env(ANTHROPIC_API_KEY=KEY), stdout=err, stderr=err)
    try:
        deadline = time.monotonic() + 15
        while not all(s.exists() for s in socks):
            assert proc.poll() is None, (work / "stderr").read_text()
            assert time.monotonic() < deadline
            time.sleep(0.01)
        yield Brk(proc, socks, log, usage, spent)
    finally:
        proc.terminate()
        proc.wait(10)


def post(sock: Path, body: bytes, headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    status, _, raw = request_unix(sock, "POST", "/v1/messages", body, headers or CLIENT_HEADERS, timeout=30)
    return status, json.loads(raw) if raw.startswith(b"{") else {"raw": raw.decode(errors="replace")}


def body(**fields: Any) -> bytes:
    req = {"model": "claude-sonnet-4-5", "max_tokens": 100, "stream": False, "messages": [], **fields}
    return json.dumps({**req, "messages": [{"role": "user", "content": "hi"}]}).encode()


def proc_status(pid: int) -> tuple[float, int]:
    """(RSS in MB, threads) of a process, from /proc."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["Threads"])


def test_bad_length_folded_and_forwarded_headers(work: Path) -> None:
    with FakeAnthropic([]) as api, brokered(work, api.base_url) as b:
        sock = b.socks[0]
        for head in ("Content-Length: \xb2", "Content-Length: 1_0", "Content-Length: +2", "X-A: 1\r\n folded"):
            raw = raw_exchange(sock, f"POST /v1/messages HTTP/1.1\r\nHost: x\r\n{head}\r\n\r\n{{}}".encode("latin-1"))
            assert raw.startswith(b"HTTP/1.1 400 "), (head, raw[:200])
        twice = b"POST /v1/messages HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n{}"
        assert raw_exchange(sock, twice).startswith(b"HTTP/1.1 400 ")
        many = "".join(f"X-H{i}: {'v' * 1000}\r\n" for i in range(90))  # 90 KiB of head: under http.server's limits
        big = exchange(sock, f"POST /v1/messages HTTP/1.1\r\n{many}\r\n".encode())
        assert big is not None and (big == b"" or big.startswith(b"HTTP/1.1 431 ")), big  # "" : reset first
        assert b.proc.poll() is None and api.requests == []  # refused before anything went upstream, broker alive
        status, _ = post(sock, body(), {**CLIENT_HEADERS, "X-Forwarded-For": "10.0.0.1", "Forwarded": "for=x"})
        assert status == 200
        assert [r.headers.get("x-forwarded-for") or r.headers.get("forwarded") for r in api.requests] == [None]
    assert "Traceback" not in (work / "stderr").read_text()


def test_refused_path_answers_before_reading_the_body(work: Path) -> None:
    with FakeAnthropic([]) as api, brokered(work, api.base_url) as b:
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(5)
            s.connect(str(b.socks[0]))
            s.sendall(b"POST /v1/complete HTTP/1.1\r\nHost: x\r\nContent-Length: 33554431\r\n\r\n")  # no body follows
            assert s.recv(65536).startswith(b"HTTP/1.1 403 ")
        assert api.requests == []


SERVER_TOOLS = [
    {"type": "web_search_20250305", "name": "web_search", "max_uses": 5},
    {"type": "web_fetch_20250910", "name": "web_fetch"},
    {"type": "code_execution_20250825", "name": "code_execution"},
    {"type": "computer_20250124", "name": "computer", "display_width_px": 800, "display_height_px": 600},
    {"type": "mcp", "server_url": "https://evil.example"},
]


def test_no_server_tool_reaches_the_api(work: Path) -> None:
    custom = {"name": "Bash", "description": "run", "input_schema": {"type": "object"}}
    with FakeAnthropic([Turn([text("ok")])] * 10) as api, brokered(work, api.base_url) as b:
        for tool in SERVER_TOOLS:
            status, answer = post(b.socks[0], body(tools=[custom, tool]))
            assert status == 400 and "allow_web" in answer["error"]["message"], tool
        assert api.requests == []
        assert post(b.socks[0], body(tools=[custom, {**custom, "type": "custom", "name": "Edit"}]))[0] == 200
    with FakeAnthropic([Turn([text("ok")])]) as api, brokered(work, api.base_url, 1, "--allow-web") as b:
        assert post(b.socks[0], body(tools=[custom, SERVER_TOOLS[0]]))[0] == 200  # [agent] allow_web = true


def test_models_limited_to_the_runs(work: Path) -> None:
    with FakeAnthropic([]) as api, brokered(work, api.base_url, 1, "--models", "claude-sonnet-4-5,haiku") as b:
        for model in ("claude-sonnet-4-5", "claude-sonnet-4-5-20250929", "claude-haiku-4-5", "claude-3-5-haiku-2024"):
            assert post(b.socks[0], body(model=model))[0] == 200, model
        for model in ("claude-opus-4-1", "claude-sonnet-4-50", "", None):
            status, answer = post(b.socks[0], body(model=model))
            assert status == 400 and "not allowed in this run" in answer["error"]["message"], model
    assert len(api.requests) == 4


def billed_past(api: FakeAnthropic, limit: float) -> int:
    """Requests the fake API served (and billed) after what it had served already reached `limit`."""
    total, past = 0.0, 0
    for model, usage in api.served_usages():
        past += total >= limit
        total += claude_cost(model, usage)
    return past


@pytest.mark.parametrize("slots", [1, 2])
def test_budget_is_a_hard_limit_per_run(work: Path, slots: int) -> None:
    limit = 0.1  # $0.018 a turn: the sixth crosses it
    refusals: list[dict[str, Any]] = []
    budget = ("--max-cost", str(limit), "--spent", "0.01")  # a resumed run: a cent spent before this broker
    with FakeAnthropic([Turn([text("ok")], TURN)] * 100) as api, brokered(work, api.base_url, slots, *budget) as b:

        def hammer(sock: Path) -> None:  # an agent that calls the broker as fast as it answers
            for _ in range(40):
                status, answer = post(sock, message(stream=False))
                if status != 200:
                    refusals.append(answer)
                    return

        threads = [threading.Thread(target=hammer, args=(s,)) for s in b.socks]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        spent = json.loads(b.spent.read_text())
    assert len(refusals) == slots
    assert all(r["type"] == "error" and "budget" in r["error"]["message"] for r in refusals)
    assert billed_past(api, limit - 0.01) <= slots  # at most the calls in flight when the limit was crossed
    served = sum(claude_cost(m, u) for m, u in api.served_usages())
    assert spent["spent"] == pytest.approx(0.01 + served) and spent["spent"] >= limit
    counted = [r for r in lines(b.usage) if r["status"] == 200]
    assert sum(claude_cost(r["model"], r) for r in counted) == pytest.approx(served)
    assert {r["slot"] for r in counted} == set(range(slots))  # each slot's calls carry its number


def stalled_bodies(sock: Path, n: int) -> list[socket.socket]:
    out = []
    for _ in range(n):
        s = socket.socket(socket.AF_UNIX)
        s.connect(str(sock))
        s.setblocking(False)
        head = b"POST /v1/messages HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        s.send(head + b"Content-Length: %d\r\n\r\n" % (32 * 2**20))
        out.append(s)
    chunk = b"x" * 2**20
    for _ in range(32):  # 32 MiB minus a byte each, as far as the broker reads them; never the last byte
        for s in out:
            try:
                s.send(chunk)
            except (BlockingIOError, OSError):
                pass
    return out


def connect_flood(sock: Path, n: int) -> list[socket.socket]:
    """`n` connections to a unix socket, held open (those past a full backlog fail, as they would for an agent)."""
    out = []
    for _ in range(n):
        s = socket.socket(socket.AF_UNIX)
        s.setblocking(False)
        try:
            s.connect(str(sock))
        except OSError:
            pass
        out.append(s)
    return out


def exchange(sock: Path, request: bytes) -> bytes | None:
    """What the broker answers to `request`, even when it answers and closes before reading it (a refusal that
    reads nothing): None when the connect itself is refused (a unix socket's full backlog says so at once)."""
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(10)
        try:
            s.connect(str(sock))
        except BlockingIOError:
            return None
        try:
            s.sendall(request)
        except (BrokenPipeError, ConnectionResetError):
            pass
        raw = b""
        try:
            while data := s.recv(65536):
                raw += data
        except ConnectionResetError:  # closed with our request unread: what came before the reset is the answer
            pass
        return raw


def test_floods_from_one_slot_cost_the_host_little_and_the_other_slot_nothing(work: Path) -> None:
    with FakeAnthropic([Turn([text("ok")])] * 1000) as api, brokered(work, api.base_url, 2) as b:
        flood, other = b.socks
        held = stalled_bodies(flood, 10)
        peak = (0.0, 0)
        try:
            for _ in range(5):  # the other slot's calls go through while the flood holds
                assert post(other, body())[0] == 200
                rss, threads = proc_status(b.proc.pid)
                peak = (max(peak[0], rss), max(peak[1], threads))
            conns = connect_flood(flood, 3000)  # over the cap they are answered and closed at once
            # the slot's connections are all taken: told so, at once (once its backlog has room for the connect)
            request = b"POST /v1/messages HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}"
            raw = wait_for(lambda: exchange(flood, request), 10, "room in the flooded slot's backlog")
            assert raw.startswith(b"HTTP/1.1 429 ") and b"connections at once" in raw, raw
            for _ in range(5):
                assert post(other, body())[0] == 200
                rss, threads = proc_status(b.proc.pid)
                peak = (max(peak[0], rss), max(peak[1], threads))
            for s in conns:
                s.close()
        finally:
            for s in held:
                s.close()
        assert peak[0] < 100 and peak[1] < 100, peak
        assert b.proc.poll() is None
        refused = [x for x in lines(b.log) if x.get("reason") == "body bytes in flight"]
        assert refused and all(x["slot"] == 0 for x in refused)
        assert MAX_CONNECTIONS < 100
        assert post(flood, body())[0] == 200  # the flooded slot recovers once its connections are gone


@pytest.mark.parametrize(
    ("model", "allowed", "refused"),
    [
        ("claude-opus-4-1", ["claude-opus-4-1-20250805", "claude-haiku-4-5"], ["claude-sonnet-4-5", "claude-opus-4-5"]),
        ("sonnet[1m]", ["claude-sonnet-4-5-20250929", "claude-3-5-haiku-20241022"], ["claude-opus-4-1"]),
        ("opusplan", ["claude-opus-4-1", "claude-sonnet-4-5"], ["gpt-5"]),
        ("", ["claude-sonnet-4-5", "claude-opus-4-1"], ["gpt-5", "o3"]),
    ],
)
def test_default_models_are_the_runs_and_its_cheap_sibling(model: str, allowed: list[str], refused: list[str]) -> None:
    from types import SimpleNamespace

    from arl.broker.policy import model_allowed
    from arl.broker.process import allowed_models

    given = allowed_models(SimpleNamespace(agent_models=()), "claude", model)  # type: ignore[arg-type]
    assert [m for m in allowed + refused if model_allowed(m, given)] == allowed
    assert allowed_models(SimpleNamespace(agent_models=("x-*",)), "claude", model) == ["x-*"]  # type: ignore[arg-type]
