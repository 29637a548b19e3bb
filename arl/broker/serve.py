"""The API broker's sockets: one unix socket per slot, each with its own listen backlog, its own cap on connections
and its own cap on request-body bytes held at once, so that one slot cannot starve another or the host's memory.
A connection over the cap is answered at once (429, without reading anything) and closed."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import socketserver
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

MAX_CONNECTIONS = 16  # per slot: Claude Code keeps a few, its subagents a few more
MAX_INFLIGHT = 40 * 1024 * 1024  # request-body bytes held per slot: one body at the size cap, and small ones beside it
MAX_HEAD = 64 * 1024  # request line and headers together (http.server alone allows 100 lines of 64 KiB)
BACKLOG = 64  # per socket: a burst of connects from one slot leaves every other slot's socket as it was


class HeadLimit:
    """The connection's reader, with a cap on the bytes `readline` may return before the next reset: http.server
    reads the head line by line, and its own limits would let one connection hold 6 MB of headers."""

    def __init__(self, f: Any) -> None:
        self.f, self.left = f, MAX_HEAD

    def readline(self, size: int = -1) -> bytes:
        if self.left <= 0:
            raise http.client.LineTooLong(f"request head over {MAX_HEAD} bytes")
        line = self.f.readline(self.left if size < 0 else min(size, self.left))
        self.left -= len(line)
        return line

    def __getattr__(self, name: str) -> Any:
        return getattr(self.f, name)


@dataclass
class SlotLimits:
    slot: int
    connections: threading.BoundedSemaphore = field(default_factory=lambda: threading.BoundedSemaphore(MAX_CONNECTIONS))
    inflight: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def reserve(self, n: int) -> bool:
        with self._lock:
            if self.inflight + n > MAX_INFLIGHT:
                return False
            self.inflight += n
            return True

    def release(self, n: int) -> None:
        with self._lock:
            self.inflight -= n


def busy_answer(message: str) -> bytes:
    body = json.dumps({"type": "error", "error": {"type": "rate_limit_error", "message": f"arl broker: {message}"}})
    head = "HTTP/1.1 429 Too Many Requests\r\nContent-Type: application/json\r\nRetry-After: 1\r\n"
    return f"{head}Content-Length: {len(body)}\r\nConnection: close\r\n\r\n{body}".encode()


class _Capped(socketserver.ThreadingMixIn, socketserver.BaseServer):
    """A slot's listener. Its handler threads are daemons: a stream in flight must not hold up shutdown."""

    daemon_threads = True
    request_queue_size = BACKLOG
    limits: SlotLimits

    def get_request(self) -> tuple[socket.socket, str]:
        try:
            return super().get_request()
        except OSError:  # out of fds (EMFILE) or a client gone before accept: wait a little, do not spin
            time.sleep(0.05)
            raise

    def process_request(self, request: socket.socket, client_address: str) -> None:  # type: ignore[override]
        if not self.limits.connections.acquire(blocking=False):
            try:
                request.setblocking(False)  # never wait on a client that does not read: the answer fits a buffer
                request.send(busy_answer(f"more than {MAX_CONNECTIONS} connections at once from this slot"))
            except OSError:
                pass
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self.limits.connections.release()  # no thread started: nobody else gives the place back
            raise

    def process_request_thread(self, request: socket.socket, client_address: str) -> None:  # type: ignore[override]
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.limits.connections.release()

    def handle_error(self, request: object, client_address: object) -> None:
        print(f"arl.broker: slot {self.limits.slot}: {sys.exc_info()[1]!r}", file=sys.stderr, flush=True)


class SlotServer(_Capped, socketserver.UnixStreamServer):
    def __init__(self, path: str, handler: type[BaseHTTPRequestHandler], limits: SlotLimits) -> None:
        self.limits = limits
        super().__init__(path, handler)


class SlotTCPServer(_Capped, socketserver.TCPServer):
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], limits: SlotLimits) -> None:
        self.limits = limits
        super().__init__(address, handler)


def serve_unix(path: Path, handler: type[BaseHTTPRequestHandler], slot: int = 0) -> SlotServer:
    """Bind and listen on a side name, then rename into place: the socket appears only once it accepts."""
    side = path.with_name(f".broker-{os.getpid()}.sock")
    side.unlink(missing_ok=True)
    server = SlotServer(str(side), handler, SlotLimits(slot))
    os.chmod(side, 0o666)  # the container's user is not ours; the folder's mode decides who gets this far
    os.replace(side, path)
    server.server_address = str(path)
    return server


def serve(
    sockets: list[Path],
    tcp: str | None,
    handler: type[BaseHTTPRequestHandler],
    ready: Callable[[str], None],
    first_slot: int = 0,
) -> None:
    """Listen on every slot's socket (and `tcp` as slot 0's too) until SIGTERM or SIGINT; the sockets are the slots
    from `first_slot` on (a broker in a SLURM job serves its own slot only)."""
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    servers: list[socketserver.BaseServer] = []
    bound: list[Path] = []  # ours to remove: a failed bind must not remove another's
    try:
        where = [f"unix:{sock}" for sock in sockets]
        if tcp:
            host, _, port = tcp.rpartition(":")
            server = SlotTCPServer((host or "127.0.0.1", int(port)), handler, SlotLimits(0))
            servers.append(server)
            where.append(f"tcp:{server.server_address[0]}:{server.server_address[1]}")
        for slot, sock in enumerate(sockets, start=first_slot):
            servers.append(serve_unix(sock, handler, slot))
            bound.append(sock)
        for server in servers:
            threading.Thread(target=server.serve_forever, args=(0.1,), daemon=True).start()
        ready(" ".join(where))
        sys.stdout.flush()
        while not stop.wait(1.0):  # a timed wait, so the signal handler gets to run
            pass
        for server in servers:
            server.shutdown()  # waits for serve_forever to return: only for servers that are serving
    finally:
        for server in servers:
            server.server_close()
        for sock in bound:
            sock.unlink(missing_ok=True)


class UnixHTTPConnection(http.client.HTTPConnection):
    """http.client over a unix socket: the Host header says localhost, the bytes go to `socket_path`."""

    def __init__(self, socket_path: str | Path, timeout: float = 60.0) -> None:
        super().__init__("localhost", timeout=timeout)
        self.socket_path = str(socket_path)

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.socket_path)


def request_unix(
    socket_path: str | Path,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: Mapping[str, str] | None = None,
    timeout: float = 60.0,
) -> tuple[int, dict[str, str], bytes]:
    """One request through a unix socket: (status, headers with lower-cased names, body)."""
    conn = UnixHTTPConnection(socket_path, timeout)
    try:
        conn.request(method, path, body, dict(headers or {}))
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()
