"""The host-service forwarder (arl/broker/forward.py) as a real process between unix sockets and a service on
127.0.0.1: bytes both ways, a flood of connections that costs one thread and bounded fds, even out of fds, and a cap
per listening socket (per slot), so that one slot's flood leaves another slot's socket working."""

from __future__ import annotations

import http.client
import http.server
import os
import resource
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from arl.broker.serve import UnixHTTPConnection
from tests.test_broker import ROOT, work
from tests.test_broker_limits import connect_flood, proc_status

__all__ = ["work"]


class Weight(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        data = self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@contextmanager
def forwarder(
    work: Path, nofile: int | None = None, listeners: int = 1, one_socket_form: bool = False
) -> Iterator[tuple[subprocess.Popen[bytes], list[Path]]]:
    service = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Weight)
    service.daemon_threads = True
    threading.Thread(target=service.serve_forever, daemon=True).start()
    socks, ready = [work / f"slot-{k}.sock" for k in range(listeners)], work / "ready"
    argv = [sys.executable, "-m", "arl.broker.forward", *(f"unix:{s}" for s in socks)]
    argv += ["--to", f"tcp:127.0.0.1:{service.server_address[1]}", "--ready", str(ready)]
    if one_socket_form:  # LISTEN TARGET READY, as the codex agent's container runs it
        argv = [*argv[:3], argv[3], argv[5], argv[7]]

    def limit() -> None:
        if nofile is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

    with open(work / "forward.log", "wb") as log:
        proc = subprocess.Popen(argv, cwd=ROOT, stdout=log, stderr=log, preexec_fn=limit)
    try:
        deadline = time.monotonic() + 10
        while not ready.exists():
            assert proc.poll() is None and time.monotonic() < deadline, (work / "forward.log").read_text()
            time.sleep(0.01)
        yield proc, socks
    finally:
        proc.terminate()
        proc.wait(10)
        service.shutdown()
        service.server_close()


def echo(sock: Path, payload: bytes) -> bytes:
    conn = UnixHTTPConnection(sock, timeout=10)
    try:
        conn.request("POST", "/", payload)
        return conn.getresponse().read()
    finally:
        conn.close()


@pytest.mark.parametrize("one_socket_form", [False, True])
def test_bytes_both_ways(work: Path, one_socket_form: bool) -> None:
    with forwarder(work, one_socket_form=one_socket_form) as (_, [sock]):
        big = os.urandom(3 * 2**20)  # more than the forwarder queues per direction: the flow control is exercised
        assert echo(sock, big) == big
        assert echo(sock, b"1.5") == b"1.5"


@pytest.mark.parametrize("nofile", [None, 40])
def test_a_flood_of_connections_costs_one_thread_and_the_forwarder_survives(work: Path, nofile: int | None) -> None:
    """3,000 connections held open; with 40 fds the forwarder runs out of them (EMFILE) and must go on."""
    with forwarder(work, nofile) as (proc, [sock]):
        held, peak = [], (0.0, 0)
        try:
            for _ in range(6):
                held += connect_flood(sock, 500)
                rss, threads = proc_status(proc.pid)
                peak = (max(peak[0], rss), max(peak[1], threads))
            fds = len(os.listdir(f"/proc/{proc.pid}/fd"))
        finally:
            for s in held:
                s.close()
        assert peak[0] < 100 and peak[1] < 100, peak
        assert fds < 2 * 64 + 16, fds
        assert proc.poll() is None
        deadline = time.monotonic() + 10  # the closed connections are noticed; then it serves as before
        while True:
            try:
                assert echo(sock, b"after the flood") == b"after the flood"
                break
            except (OSError, AssertionError):
                assert time.monotonic() < deadline
                time.sleep(0.1)
        if nofile is not None:
            assert "(EMFILE); not accepting" in (work / "forward.log").read_text()


def test_the_cap_is_per_slot_a_flood_on_one_socket_leaves_the_other_working(work: Path) -> None:
    """Slot 0 holds 1,500 connections (far past its cap of 64); slot 1's requests are answered all along, slot 0's
    new ones are refused at once (its cap is full), and the forwarder stays one thread with bounded fds."""
    with forwarder(work, listeners=2) as (proc, [slot0, slot1]):
        held: list[socket.socket] = []
        try:
            for _ in range(3):
                held += connect_flood(slot0, 500)
                assert echo(slot1, b"slot 1 works") == b"slot 1 works"
            with pytest.raises((http.client.HTTPException, ConnectionError)):
                echo(slot0, b"over the cap")  # accepted and closed: its 64 places are taken
            rss, threads = proc_status(proc.pid)
            fds = len(os.listdir(f"/proc/{proc.pid}/fd"))
            assert echo(slot1, b"and still") == b"and still"
        finally:
            for s in held:
                s.close()
        assert rss < 100 and threads == 1, (rss, threads)
        assert fds < 2 * 64 + 2 * 2 + 16, fds  # slot 0's cap of pairs; slot 1's ended
        assert proc.poll() is None
