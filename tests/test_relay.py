"""A SLURM job's relay and its gate on the submitting host (arl/broker/relay.py) as real processes: a connection to
the relay's unix socket reaches its own slot's socket behind the gate; a connection to the gate without the run's
secret, with a slot that does not exist, or with a first line too long, is closed having reached nothing; the
secret is on no command line."""

from __future__ import annotations

import http.client
import http.server
import os
import socket
import socketserver
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from arl.broker.relay import knock
from arl.broker.serve import request_unix
from tests.test_broker import ROOT, work

__all__ = ["work"]
SECRET = "ab" * 32


@dataclass
class Relayed:
    relay_sock: Path
    gate: tuple[str, int]
    seen: list[tuple[int, bytes]] = field(default_factory=list)  # (slot, body) each slot's socket received
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    logs: list[Path] = field(default_factory=list)


def slot_server(path: Path, slot: int, seen: list[tuple[int, bytes]]) -> socketserver.UnixStreamServer:
    class Answer(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            data = self.rfile.read(int(self.headers["Content-Length"]))
            seen.append((slot, data))
            body = f"slot {slot}: ".encode() + data
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = socketserver.ThreadingUnixStreamServer(str(path), Answer)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def started(argv: list[str], ready: Path, log: Path) -> subprocess.Popen[bytes]:
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "arl.broker.relay", *argv], cwd=ROOT, stdout=out, stderr=out)
    deadline = time.monotonic() + 10
    while not (ready.exists() and ready.read_text().strip()):
        assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
        time.sleep(0.01)
    return proc


@contextmanager
def relayed(work: Path) -> Iterator[Relayed]:
    secret = work / "relay.secret"
    secret.write_text(SECRET + "\n")
    secret.chmod(0o600)
    seen: list[tuple[int, bytes]] = []
    servers = [slot_server(work / f"host-{k}.sock", k, seen) for k in (0, 1)]
    routes = [a for k in (0, 1) for a in ("--route", f"{k}=unix:{work / f'host-{k}.sock'}")]
    gate = started(
        ["gate", "tcp:127.0.0.1:0", "--secret", str(secret), *routes, "--ready", str(work / "gate")],
        work / "gate",
        work / "gate.log",
    )
    host, _, port = (work / "gate").read_text().split()[0].removeprefix("tcp:").rpartition(":")
    relay_sock = work / "relay.sock"
    argv = ["relay", f"unix:{relay_sock}", "--to", f"tcp:{host}:{port}", "--secret", str(secret), "--slot", "1"]
    relay = started([*argv, "--ready", str(work / "relay")], work / "relay", work / "relay.log")
    r = Relayed(relay_sock, (host, int(port)), seen, [gate, relay], [work / "gate.log", work / "relay.log"])
    try:
        yield r
    finally:
        for proc in r.procs:
            proc.terminate()
            proc.wait(10)
        for server in servers:
            server.shutdown()
            server.server_close()


def test_the_relay_reaches_its_slot_through_the_gate(work: Path) -> None:
    with relayed(work) as r:
        assert oct(r.relay_sock.stat().st_mode & 0o777) == "0o666"  # the container's user reaches it, as the broker's
        for n in range(3):
            status, _, body = request_unix(r.relay_sock, "POST", "/v1/messages", f"hello {n}".encode())
            assert (status, body) == (200, f"slot 1: hello {n}".encode())
        assert r.seen == [(1, b"hello 0"), (1, b"hello 1"), (1, b"hello 2")]  # its own slot's socket, no other
        for proc in r.procs:  # the secret is read from its file: `ps` does not show it
            assert SECRET.encode() not in Path(f"/proc/{proc.pid}/cmdline").read_bytes()


@pytest.mark.parametrize(
    ("first", "why"),
    [
        (b"00" * 32 + b" 0\n", "a wrong secret"),
        (SECRET.encode()[:-1] + b" 0\n", "a wrong secret"),
        (SECRET.encode() + b" 7\n", "a wrong secret or slot"),
        (b"x" * 300, "no first line"),
    ],
)
def test_the_gate_refuses_what_lacks_the_secret(work: Path, first: bytes, why: str) -> None:
    request = b"POST /v1/messages HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
    with relayed(work) as r:
        with socket.create_connection(r.gate, timeout=10) as conn:
            conn.sendall(first + request)
            try:
                got = conn.recv(4096)
            except ConnectionResetError:
                got = b""
        assert got == b""  # closed, no answer
        assert r.seen == []  # nothing reached a slot's socket
        deadline = time.monotonic() + 10
        while "refused a connection from 127.0.0.1:" not in r.logs[0].read_text():
            assert time.monotonic() < deadline, r.logs[0].read_text()
            time.sleep(0.02)
        assert why in r.logs[0].read_text()
        # the gate still serves the relay afterwards
        assert request_unix(r.relay_sock, "POST", "/", b"after")[2] == b"slot 1: after"


def test_a_first_line_that_never_comes_is_closed(work: Path) -> None:
    with relayed(work) as r:
        with socket.create_connection(r.gate, timeout=20) as conn:
            conn.sendall(SECRET.encode()[:10])  # and nothing more
            start = time.monotonic()
            assert conn.recv(16) == b""
            assert 4 < time.monotonic() - start < 15  # the gate's deadline (5 s), not the client's
        assert r.seen == [] and "no first line within 5 s" in r.logs[0].read_text()
        os.kill(r.procs[0].pid, 0)  # the gate is alive


def test_a_relay_that_cannot_reach_its_gate_says_so(work: Path) -> None:
    secret = work / "relay.secret"
    secret.write_text(SECRET + "\n")
    port = _closed_port()  # nothing listens on it
    sock, ready, log = work / "relay.sock", work / "relay", work / "relay.log"
    argv = ["relay", f"unix:{sock}", "--to", f"tcp:127.0.0.1:{port}", "--secret", str(secret), "--slot", "0"]
    proc = started([*argv, "--ready", str(ready)], ready, log)
    try:
        with pytest.raises((ConnectionError, http.client.RemoteDisconnected)):
            request_unix(sock, "POST", "/v1/messages", b"x", timeout=10)
        assert "cannot connect to the target (Connection refused)" in log.read_text()
    finally:
        proc.terminate()
        proc.wait(10)


def test_a_job_knocks_before_its_container_starts(work: Path) -> None:
    """What the job's runner checks once its relay listens: the gate takes a connection opened with the secret (no
    refusal logged), and a gate it cannot reach, or no secret, is named."""
    with relayed(work) as r:
        spec = {"to": f"tcp:{r.gate[0]}:{r.gate[1]}", "slot": 0, "secret": str(work / "relay.secret")}
        assert knock(spec) == ""
        assert knock({**spec, "to": f"tcp:127.0.0.1:{_closed_port()}"}).startswith(
            "the job's relay cannot reach the API broker's gate at 127.0.0.1:"
        )
        assert "has no secret" in knock({**spec, "secret": str(work / "missing")})
        # a request through the gate after the knocks: the gate, one thread, handled them first
        assert request_unix(r.relay_sock, "POST", "/", b"after")[2] == b"slot 1: after"
        assert "refused" not in r.logs[0].read_text() and r.seen == [(1, b"after")]  # the knock sent no request


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
