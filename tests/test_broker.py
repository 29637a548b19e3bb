"""The API broker (arl/broker.py) as a real process: a client on its unix socket, a scripted upstream on 127.0.0.1."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import socket
import ssl
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from arl.agents.pricing import claude_cost
from arl.broker.auth import OAUTH_CLIENT_ID
from arl.broker.broker import UnixHTTPConnection, request_unix
from arl.broker.usage import read_usage, usage_cost
from tests.fake_anthropic import FakeAnthropic, Turn, Usage, bash, error_turn, text

ROOT = Path(__file__).resolve().parent.parent
KEY = "sk-ant-broker-test-key-0123456789"
CREDENTIAL_VARS = ("ANTHROPIC_API_KEY", "CLAUDE_CODE_OAUTH_TOKEN", "OPENAI_API_KEY", "CODEX_API_KEY")
CLIENT_HEADERS = {
    "content-type": "application/json",
    "anthropic-version": "2023-06-01",
    "x-api-key": "placeholder",
    "authorization": "Bearer stolen",
    "cookie": "session=stolen",
}
TOOLS = [{"name": "Bash", "description": "run", "input_schema": {"type": "object"}}]


def message(model: str = "claude-sonnet-4-5", stream: bool = True) -> bytes:
    """A Messages request the fake counts as an agent turn (it carries tools)."""
    body = {"model": model, "max_tokens": 1000, "stream": stream, "tools": TOOLS, "messages": []}
    return json.dumps({**body, "messages": [{"role": "user", "content": "hi"}]}).encode()


def sse_events(raw: bytes) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for block in raw.decode().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if "event" in lines:
            out.append((lines["event"], json.loads(lines["data"])))
    return out


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


@dataclass
class Broker:
    proc: subprocess.Popen[str]
    sock: Path
    log: Path
    usage: Path
    stderr: Path


@pytest.fixture
def work() -> Iterator[Path]:
    """A short folder: a unix socket path must fit in 108 bytes, which pytest's tmp_path may not."""
    path = Path(tempfile.mkdtemp(prefix="brk", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def broker_env(**creds: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in CREDENTIAL_VARS}
    return {**env, **creds}


@contextmanager
def broker(work: Path, upstream: str, env: dict[str, str] | None = None, *args: str) -> Iterator[Broker]:
    sock, log, usage, stderr = work / "b.sock", work / "log.jsonl", work / "usage.jsonl", work / "stderr"
    argv = [sys.executable, "-m", "arl.broker.broker", "--socket", str(sock), "--upstream", upstream]
    argv += ["--log", str(log), "--usage", str(usage), *args]
    with open(stderr, "w") as err:
        env = env or broker_env(ANTHROPIC_API_KEY=KEY)
        proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=err, text=True)
    try:
        deadline = time.monotonic() + 15
        while not sock.exists():  # the broker renames its socket into place once it accepts connections
            assert proc.poll() is None, f"broker exited {proc.returncode}: {stderr.read_text()}"
            assert time.monotonic() < deadline, "broker socket did not appear"
            time.sleep(0.01)
        yield Broker(proc, sock, log, usage, stderr)
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()


@dataclass
class Seen:
    path: str
    headers: dict[str, str]
    body: bytes
    raw_headers: list[tuple[str, str]]  # as sent, repeats included


@dataclass
class Upstream:
    """A one-off upstream: `respond(handler, seen)` answers every request; requests are recorded in `seen`."""

    respond: Callable[[BaseHTTPRequestHandler, Seen], None]
    seen: list[Seen] = field(default_factory=list)

    def __post_init__(self) -> None:
        outer = self

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                raw = [(k.lower(), v) for k, v in self.headers.items()]
                seen = Seen(self.path, dict(raw), body, raw)
                outer.seen.append(seen)
                outer.respond(self, seen)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def upstreams() -> Iterator[Callable[[Callable[[BaseHTTPRequestHandler, Seen], None]], Upstream]]:
    made: list[Upstream] = []

    def make(respond: Callable[[BaseHTTPRequestHandler, Seen], None]) -> Upstream:
        made.append(Upstream(respond))
        return made[-1]

    yield make
    for u in made:
        u.close()


def test_streams_messages_with_the_hosts_key_not_the_clients(work: Path) -> None:
    turn = Turn([text("Hello from the fake upstream."), bash("echo hi")], Usage(120, 30, 400, 50))
    with FakeAnthropic([turn], chunk=5) as api, broker(work, api.base_url) as b:
        headers = {**CLIENT_HEADERS, "anthropic-beta": "fine-grained-tool-streaming-2025-05-14"}
        status, got, raw = request_unix(b.sock, "POST", "/v1/messages?beta=true", message(), headers)
        assert stat.S_IMODE(b.sock.stat().st_mode) == 0o666

    assert status == 200 and got["content-type"] == "text/event-stream"
    assert got["transfer-encoding"] == "chunked"  # the fake's stream is close-delimited: the broker frames it
    events = sse_events(raw)
    expected = [name for name, _ in api.sse_events("claude-sonnet-4-5", turn)]
    assert [name for name, _ in events] == expected and expected[-1] == "message_stop"
    deltas = [e["delta"] for name, e in events if name == "content_block_delta"]
    assert "".join(d.get("text", "") for d in deltas) == "Hello from the fake upstream."
    assert json.loads("".join(d.get("partial_json", "") for d in deltas))["command"] == "echo hi"

    [seen] = api.requests
    assert seen.path == "/v1/messages?beta=true" and seen.body == json.loads(message())
    assert seen.headers["x-api-key"] == KEY
    assert "authorization" not in seen.headers and "cookie" not in seen.headers
    assert seen.headers["host"] == f"127.0.0.1:{api.port}"
    assert seen.headers["anthropic-version"] == "2023-06-01"
    assert seen.headers["anthropic-beta"] == "fine-grained-tool-streaming-2025-05-14"  # no OAuth beta for a key
    [logged] = lines(b.log)
    assert logged["method"] == "POST" and logged["path"] == "/v1/messages?beta=true" and logged["status"] == 200
    assert isinstance(logged["duration"], float)
    for f in (b.log, b.usage, b.stderr):
        assert KEY not in f.read_text() and "stolen" not in f.read_text()


def test_stream_is_relayed_as_it_arrives(work: Path, upstreams: Any) -> None:
    """The upstream sends the first events (the last one cut mid-line), then waits until the client has them
    before it sends the rest: a buffering broker would leave it waiting for nothing until its timeout."""
    first_seen = threading.Event()
    released: list[bool] = []
    start = {"type": "message_start", "message": {"model": "claude-haiku-4-5", "usage": {"input_tokens": 11}}}
    delta = {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 7}}
    part1 = f"event: message_start\ndata: {json.dumps(start)}\n\nevent: message_delta\ndata: {json.dumps(delta)[:20]}"
    part2 = f"{json.dumps(delta)[20:]}\n\nevent: message_stop\ndata: {{}}\n\n"

    def respond(h: BaseHTTPRequestHandler, seen: Seen) -> None:
        h.send_response(200)
        h.send_header("content-type", "text/event-stream")
        h.send_header("transfer-encoding", "chunked")
        h.end_headers()
        for i, part in enumerate((part1, part2)):
            if i:
                released.append(first_seen.wait(10))  # the last bytes leave only after the first arrived
            data = part.encode()
            h.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            h.wfile.flush()
        h.wfile.write(b"0\r\n\r\n")

    up = upstreams(respond)
    with broker(work, up.url) as b:
        conn = UnixHTTPConnection(b.sock, timeout=30)
        conn.request("POST", "/v1/messages", message("claude-haiku-4-5"), CLIENT_HEADERS)
        resp = conn.getresponse()
        first = resp.read1(65536)
        first_seen.set()
        rest = resp.read()
        conn.close()
        assert b"message_start" in first and b"message_stop" not in first
        assert released == [True], "the first bytes reached the client only after the upstream sent the last ones"
        assert (first + rest).decode() == part1 + part2
        [seen] = up.seen
        creds = [(k, v) for k, v in seen.raw_headers if k in ("x-api-key", "authorization", "cookie")]
        assert creds == [("x-api-key", KEY)]  # the client's are gone, not merely outnumbered
        [used] = read_usage(b.usage)  # the event split across reads was parsed whole
    assert (used["model"], used["input_tokens"], used["output_tokens"], used["status"]) == (
        "claude-haiku-4-5",
        11,
        7,
        200,
    )


REFUSED = [
    ("GET", "/v1/models"),
    ("POST", "/v1/complete"),
    ("POST", "/v1/messages/../../admin"),
    ("POST", "/v1/messages/count_tokens/../../models"),
    ("GET", "/v1/messages"),
    ("DELETE", "/v1/messages"),
    ("BREW", "/v1/messages"),
    ("GET", "http://evil.example/"),
    ("POST", "http://evil.example/v1/messages"),
    ("CONNECT", "evil.example:443"),
]


def raw_exchange(sock: Path, request: bytes) -> bytes:
    """Send a whole request in one write (no half-sent body for a refusal to race), read until the broker closes."""
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(10)
        s.connect(str(sock))
        s.sendall(request)
        raw = b""
        while data := s.recv(65536):
            raw += data
    return raw


def test_only_the_inference_endpoints_are_forwarded(work: Path) -> None:
    with FakeAnthropic([]) as api, broker(work, api.base_url) as b:
        conn = UnixHTTPConnection(b.sock, timeout=10)  # a refusal of a request without a body leaves it usable
        for method, path in REFUSED:
            if method == "POST":  # a body on a refused path is never read: the answer closes the connection
                raw = raw_exchange(b.sock, f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{{}}".encode())
                head, _, answer = raw.partition(b"\r\n\r\n")
                assert head.startswith(b"HTTP/1.1 403 ") and b"Connection: close" in head, (method, path)
                body = json.loads(answer)
            else:
                conn.request(method, path, None, CLIENT_HEADERS)
                resp = conn.getresponse()
                body = json.loads(resp.read())
                assert resp.status == 403 and resp.getheader("connection") != "close", (method, path)
            assert body["type"] == "error" and body["error"]["type"] == "permission_error"
        assert api.requests == []
        # the allowed side endpoint does go through (so the refusals above are not a broker that refuses all)
        conn.request("POST", "/v1/messages/count_tokens?beta=true", b"{}", CLIENT_HEADERS)
        resp = conn.getresponse()
        assert (resp.status, json.loads(resp.read())) == (200, {"input_tokens": 100})
        conn.close()
        # a chunked upload and an oversized one are refused before anything is sent on
        chunked = b"POST /v1/messages HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n"
        assert raw_exchange(b.sock, chunked).startswith(b"HTTP/1.1 411 ")
        status, _, _ = request_unix(b.sock, "POST", "/v1/messages", None, {"content-length": str(33 * 2**20)})
        assert status == 413
    assert [r.path for r in api.requests] == ["/v1/messages/count_tokens?beta=true"]
    logged = lines(b.log)
    assert [(x["method"], x["path"], x["status"]) for x in logged[: len(REFUSED)]] == [(m, p, 403) for m, p in REFUSED]
    assert all(x["reason"] and x["time"] for x in logged[: len(REFUSED)])
    assert [x["status"] for x in logged[len(REFUSED) :]] == [200, 411, 413]


def test_oauth_token_from_the_environment(work: Path) -> None:
    env = broker_env(CLAUDE_CODE_OAUTH_TOKEN="sk-ant-oat-env-token")
    with FakeAnthropic([Turn([text("hi")])]) as api, broker(work, api.base_url, env) as b:
        headers = {**CLIENT_HEADERS, "anthropic-beta": "interleaved-thinking-2025-05-14"}
        status, _, _ = request_unix(b.sock, "POST", "/v1/messages?beta=true", message(), headers)
    assert status == 200
    [seen] = api.requests
    assert seen.headers["authorization"] == "Bearer sk-ant-oat-env-token"
    assert "x-api-key" not in seen.headers
    assert seen.headers["anthropic-beta"] == "interleaved-thinking-2025-05-14,oauth-2025-04-20"


def credentials_file(path: Path, expires_ms: int) -> Path:
    oauth = {"accessToken": "old-access", "refreshToken": "old-refresh", "expiresAt": expires_ms, "scopes": ["a"]}
    path.write_text(json.dumps({"claudeAiOauth": {**oauth, "subscriptionType": "max"}, "other": {"keep": 1}}))
    path.chmod(0o644)
    return path


@pytest.mark.parametrize("expired", [True, False])
def test_credentials_file_token_refreshed_on_the_host(work: Path, upstreams: Any, expired: bool) -> None:
    def token_endpoint(h: BaseHTTPRequestHandler, seen: Seen) -> None:
        data = json.dumps({"access_token": "new-access", "refresh_token": "new-refresh", "expires_in": 3600}).encode()
        h.send_response(200)
        h.send_header("content-type", "application/json")
        h.send_header("content-length", str(len(data)))
        h.end_headers()
        h.wfile.write(data)

    tokens = upstreams(token_endpoint)
    now_ms = int(time.time() * 1000)
    creds = credentials_file(work / "credentials.json", now_ms + (60_000 if expired else 3_600_000))
    before = creds.read_text()
    args = ("--credentials-file", str(creds), "--oauth-token-url", f"{tokens.url}/v1/oauth/token")
    with (
        FakeAnthropic([Turn([text("a")]), Turn([text("b")])]) as api,
        broker(work, api.base_url, broker_env(), *args) as b,
    ):
        for _ in range(2):
            assert request_unix(b.sock, "POST", "/v1/messages", message(), CLIENT_HEADERS)[0] == 200
    assert [r.headers["authorization"] for r in api.requests] == [f"Bearer {'new' if expired else 'old'}-access"] * 2
    assert all(r.headers["anthropic-beta"] == "oauth-2025-04-20" for r in api.requests)
    if not expired:
        assert tokens.seen == [] and creds.read_text() == before
        return
    [call] = tokens.seen  # once: the second request used the refreshed token
    assert call.path == "/v1/oauth/token"
    assert json.loads(call.body) == {
        "grant_type": "refresh_token",
        "refresh_token": "old-refresh",
        "client_id": OAUTH_CLIENT_ID,
    }
    saved = json.loads(creds.read_text())
    oauth = saved["claudeAiOauth"]
    assert (oauth["accessToken"], oauth["refreshToken"]) == ("new-access", "new-refresh")
    assert abs(oauth["expiresAt"] - (now_ms + 3_600_000)) < 60_000
    assert (oauth["scopes"], oauth["subscriptionType"], saved["other"]) == (["a"], "max", {"keep": 1})
    assert stat.S_IMODE(creds.stat().st_mode) == 0o600
    assert sorted(p.name for p in work.iterdir() if p.name.startswith(".")) == []  # no temp file left


def test_upstream_down_is_a_502_and_recorded(work: Path) -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with broker(work, f"http://127.0.0.1:{port}") as b:
        status, _, raw = request_unix(b.sock, "POST", "/v1/messages", message("claude-opus-4-1"), CLIENT_HEADERS)
        assert status == 502
        body = json.loads(raw)
        assert body["type"] == "error" and body["error"]["type"] == "api_error" and body["error"]["message"]
        [used] = read_usage(b.usage)
        [logged] = lines(b.log)
    assert (used["status"], used["error"], used["model"], used["output_tokens"]) == (
        502,
        "connection_error",
        "claude-opus-4-1",
        0,
    )
    assert logged["status"] == 502 and "Connection" in logged["reason"]


def test_overloaded_upstream_passed_through_with_retry_after(work: Path, upstreams: Any) -> None:
    error = json.dumps({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}).encode()

    def respond(h: BaseHTTPRequestHandler, seen: Seen) -> None:
        h.send_response(529)
        h.send_header("content-type", "application/json")
        h.send_header("retry-after", "7")
        h.send_header("content-length", str(len(error)))
        h.end_headers()
        h.wfile.write(error)

    up = upstreams(respond)
    with broker(work, up.url) as b:
        status, headers, raw = request_unix(b.sock, "POST", "/v1/messages/count_tokens", b"{}", CLIENT_HEADERS)
        [used] = read_usage(b.usage)  # a failure is recorded on any endpoint, not only /v1/messages
    assert (status, headers["retry-after"], raw) == (529, "7", error)
    assert (used["status"], used["retry_after"], used["error"]) == (529, 7, "overloaded_error")


def test_usage_counted_by_the_broker_prices_like_claude_code(work: Path) -> None:
    script = [
        Turn([text("one"), bash("ls")], Usage(1000, 200, 3000, 40_000, cache_write_1h=1000)),
        Turn([text("two")], Usage(5, 700, 0, 44_000)),
        error_turn(500),
        Turn([text("three")], Usage(17, 9, 100, 0)),
    ]
    models = ["claude-sonnet-4-5", "claude-opus-4-1", "claude-opus-4-1", "claude-haiku-4-5"]
    with FakeAnthropic(script) as api, broker(work, api.base_url) as b:
        conn = UnixHTTPConnection(b.sock, timeout=30)  # one keep-alive connection: the framing must be exact
        for i, model in enumerate(models):
            conn.request("POST", "/v1/messages?beta=true", message(model, stream=i != 1), CLIENT_HEADERS)
            resp = conn.getresponse()
            resp.read()
            assert resp.status == (500 if i == 2 else 200)
        conn.close()
        used = read_usage(b.usage)
    served = api.served_usages()
    assert len(served) == 3
    fields = ("input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
    ok = [u for u in used if u["status"] == 200]
    assert [(u["model"], *(u[k] for k in fields)) for u in ok] == [(m, *(s[k] for k in fields)) for m, s in served]
    assert [u["status"] for u in used] == [200, 200, 500, 200] and used[2]["model"] == "claude-opus-4-1"
    expected = sum(claude_cost(m, s) for m, s in served)
    assert expected > 0 and usage_cost(b.usage, claude_cost) == pytest.approx(expected)


def test_tcp_listener_and_sigterm_shutdown(work: Path) -> None:
    with FakeAnthropic([Turn([text("hi")])]) as api, broker(work, api.base_url, None, "--tcp", "127.0.0.1:0") as b:
        assert b.proc.stdout is not None
        ready = b.proc.stdout.readline()
        host, port = ready.split("tcp:")[1].split()[0].rsplit(":", 1)
        tcp = http.client.HTTPConnection(host, int(port), timeout=10)
        tcp.request("POST", "/v1/messages", message(stream=False), CLIENT_HEADERS)
        assert tcp.getresponse().status == 200
        idle = UnixHTTPConnection(b.sock, timeout=10)  # a keep-alive client that stays connected
        idle.request("POST", "/v1/messages/count_tokens", b"{}", CLIENT_HEADERS)
        idle.getresponse().read()
        b.proc.send_signal(signal.SIGTERM)
        assert b.proc.wait(5) == 0
        assert not b.sock.exists()
        idle.close()
        tcp.close()
    assert [r.headers["x-api-key"] for r in api.requests] == [KEY, KEY]


def test_http10_client_gets_a_close_delimited_stream(work: Path) -> None:
    turn = Turn([text("an answer in several deltas")], Usage(3, 4))
    with FakeAnthropic([turn], chunk=4) as api, broker(work, api.base_url) as b:
        body = message()
        raw = raw_exchange(b.sock, b"POST /v1/messages HTTP/1.0\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
    head, _, payload = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and b"chunked" not in head.lower()
    assert [name for name, _ in sse_events(payload)] == [name for name, _ in api.sse_events("m", turn)]


def test_upstream_cut_mid_answer_is_recorded_incomplete(work: Path, upstreams: Any) -> None:
    start = {"type": "message_start", "message": {"model": "claude-sonnet-4-5", "usage": {"input_tokens": 500}}}
    event = f"event: message_start\ndata: {json.dumps(start)}\n\n".encode()

    def respond(h: BaseHTTPRequestHandler, seen: Seen) -> None:
        h.send_response(200)
        h.send_header("content-type", "text/event-stream")
        h.send_header("content-length", str(len(event) + 1000))  # promises more than it sends
        h.end_headers()
        h.wfile.write(event)
        h.close_connection = True

    up = upstreams(respond)
    with broker(work, up.url) as b:
        conn = UnixHTTPConnection(b.sock, timeout=10)
        conn.request("POST", "/v1/messages", message(), CLIENT_HEADERS)
        resp = conn.getresponse()
        with pytest.raises(http.client.IncompleteRead):  # the client sees a cut answer, not a short one
            resp.read()
        conn.close()
        [used] = read_usage(b.usage)
        [logged] = lines(b.log)
    assert (used["input_tokens"], used["status"], used["incomplete"]) == (500, 200, True)
    assert logged["incomplete"] is True


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl CLI to make a certificate")
def test_https_upstream_verified_with_ssl_cert_file(work: Path) -> None:
    """The production path: TLS to the upstream, verified against SSL_CERT_FILE (a self-signed cert here)."""
    cert, key = work / "cert.pem", work / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert, key)
    with FakeAnthropic([Turn([text("over TLS")], Usage(2, 3))]) as api:
        api._server.socket = tls.wrap_socket(api._server.socket, server_side=True)
        url = f"https://127.0.0.1:{api.port}"
        with broker(work, url, broker_env(ANTHROPIC_API_KEY=KEY, SSL_CERT_FILE=str(cert))) as b:
            status, _, raw = request_unix(b.sock, "POST", "/v1/messages", message(), CLIENT_HEADERS)
        assert status == 200 and sse_events(raw)[-1][0] == "message_stop"
        assert api.requests[0].headers["x-api-key"] == KEY
        with broker(work, url, broker_env(ANTHROPIC_API_KEY=KEY, SSL_CERT_FILE=os.devnull)) as b:
            status, _, raw = request_unix(b.sock, "POST", "/v1/messages", message(), CLIENT_HEADERS)
        assert status == 502 and b"CERTIFICATE_VERIFY_FAILED" in raw  # not trusted without the file


def test_openai_provider_bearer_key_and_its_own_endpoints(work: Path, upstreams: Any) -> None:
    def respond(h: BaseHTTPRequestHandler, seen: Seen) -> None:
        h.send_response(200)
        h.send_header("content-length", "2")
        h.end_headers()
        h.wfile.write(b"{}")

    up = upstreams(respond)
    env = broker_env(OPENAI_API_KEY="sk-openai-test")
    with broker(work, up.url, env, "--provider", "openai") as b:
        assert request_unix(b.sock, "POST", "/v1/responses", b"{}", CLIENT_HEADERS)[0] == 200
        assert request_unix(b.sock, "POST", "/v1/chat/completions", b"{}", CLIENT_HEADERS)[0] == 200
        assert request_unix(b.sock, "POST", "/v1/messages", b"{}", CLIENT_HEADERS)[0] == 403
    assert [s.path for s in up.seen] == ["/v1/responses", "/v1/chat/completions"]
    for seen in up.seen:
        creds = [(k, v) for k, v in seen.raw_headers if k in ("x-api-key", "authorization", "cookie")]
        assert creds == [("authorization", "Bearer sk-openai-test")] and "anthropic-beta" not in seen.headers


def test_openai_usage_counted_from_every_answer_shape() -> None:
    """Responses SSE (split mid-event), a Responses JSON body, a Chat Completions chunk, a failed response."""
    from arl.broker.usage import UsageMeter

    done = {"type": "response.completed", "response": {"model": "gpt-5-codex", "usage": {
        "input_tokens": 900, "input_tokens_details": {"cached_tokens": 800}, "output_tokens": 70}}}  # fmt: skip
    sse = f"event: response.output_text.delta\ndata: {json.dumps({'type': 'x', 'delta': 'usage'})}\n\n"
    sse += f"event: response.completed\ndata: {json.dumps(done)}\n\n"
    meter = UsageMeter(True)
    for i in range(0, len(sse), 7):
        meter.feed(sse[i : i + 7].encode())
    meter.finish()
    assert meter.model == "gpt-5-codex"
    assert meter.usage == {"input_tokens": 900, "cached_input_tokens": 800, "output_tokens": 70}
    body = {"object": "response", "model": "gpt-5", "usage": {"input_tokens": 5, "output_tokens": 6}}
    chunk = {"object": "chat.completion.chunk", "model": "gpt-4.1", "usage": {
        "prompt_tokens": 11, "completion_tokens": 3, "prompt_tokens_details": {"cached_tokens": 4}}}  # fmt: skip
    failed = {"type": "response.failed", "response": {"status": "failed", "error": {"code": "server_error"}}}
    got = []
    for obj, sse_mode in ((body, False), (chunk, True), (failed, True)):
        meter = UsageMeter(sse_mode)
        meter.feed((f"data: {json.dumps(obj)}\n\n" if sse_mode else json.dumps(obj)).encode())
        meter.finish()
        got.append((meter.model, meter.usage, meter.error))
    assert got == [
        ("gpt-5", {"input_tokens": 5, "cached_input_tokens": 0, "output_tokens": 6}, ""),
        ("gpt-4.1", {"input_tokens": 11, "cached_input_tokens": 4, "output_tokens": 3}, ""),
        ("", {}, "server_error"),
    ]
