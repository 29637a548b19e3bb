"""The host-side API broker: the sandboxed agent's only way to its LLM API, and the holder of the real credential.

    python -m arl.sandbox.broker --socket PATH --upstream URL --log PATH --usage PATH [--provider anthropic|openai]
                         [--tcp HOST:PORT] [--credentials-file PATH] [--oauth-token-url URL]

The agent runs with `--network none` and a placeholder credential, and reaches the broker through a unix socket
mounted into the container. The broker forwards only the inference endpoints, swaps the client's credential for the
host's, streams answers back as they arrive and counts token usage itself, failures included (the usage file).
Request bodies need a Content-Length (chunked uploads get 411: Claude Code and codex always send a length) and are read
whole, capped at MAX_BODY. A response without Content-Length is re-framed chunked for HTTP/1.1 clients (their
connection stays reusable), close-delimited for HTTP/1.0 ones. One thread and one upstream connection per request."""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import signal
import socket
import socketserver
import sys
import threading
import time
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from arl.sandbox.broker_auth import OAUTH_BETA, OAUTH_TOKEN_URL, Credentials, open_connection
from arl.sandbox.broker_usage import MAX_BODY, UsageMeter, append_jsonl, now_iso

ALLOWED = {
    "anthropic": ("/v1/messages", "/v1/messages/count_tokens"),
    "openai": ("/v1/responses", "/v1/chat/completions"),
}
TOKEN_KEYS = {
    "anthropic": ("input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens"),
    "openai": ("input_tokens", "cached_input_tokens", "output_tokens"),  # codex's names (pricing.openai_cost)
}
CHUNK = 64 * 1024
READ_TIMEOUT = 600.0  # reads: the API sends pings while a long answer is being thought out
HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade", "expect"}
CREDENTIAL_HEADERS = {"x-api-key", "authorization", "cookie", "proxy-authorization", "proxy-authenticate", "set-cookie"}
# Accept-Encoding as well: the broker reads the body to count usage, so the upstream must answer uncompressed
STRIPPED = HOP_BY_HOP | CREDENTIAL_HEADERS | {"host", "content-length", "accept-encoding"}
_QUERY_OK = re.compile(r"[\x21-\x7e]*")  # printable ASCII, no spaces or controls: nothing to smuggle upstream


class Handler(BaseHTTPRequestHandler):
    """One client connection (keep-alive: many requests); `main` makes the subclass that holds the configuration."""

    protocol_version = "HTTP/1.1"
    timeout = READ_TIMEOUT  # an idle keep-alive client does not hold its thread forever
    provider, upstream, log_file, usage_file = "anthropic", "", Path(os.devnull), Path(os.devnull)
    credentials: Credentials

    def __getattr__(self, name: str) -> Callable[[], None]:
        if name.startswith("do_"):  # every method, CONNECT and invented ones too, goes through the allow-list
            return self._handle
        raise AttributeError(name)

    def address_string(self) -> str:  # a unix socket's client_address is "" (or a path), not (host, port)
        return str(self.client_address[0]) if isinstance(self.client_address, tuple) else "unix"

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass  # the JSON log has every request

    def _log(self, status: int, start: float, **extra: Any) -> None:
        line = {"time": now_iso(), "method": self.command, "path": self.path[:300], "status": status}
        append_jsonl(self.log_file, {**line, "duration": round(time.monotonic() - start, 3), **extra})

    def _refuse(self, start: float, status: int, kind: str, message: str, reason: str, close: bool = False) -> None:
        """An error in the API's shape, logged before it is sent: who sees the answer finds the log line written."""
        self._log(status, start, reason=reason)
        body = json.dumps({"type": "error", "error": {"type": kind, "message": f"arl broker: {message}"}}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        if close:  # the request body is still unread: the connection cannot carry another request
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def _handle(self) -> None:
        start = time.monotonic()
        length = self.headers.get("Content-Length", "")  # none and no Transfer-Encoding: no body
        sized = "Transfer-Encoding" not in self.headers and (length == "" or length.isdigit())
        # read even a body about to be refused: the client is not cut off mid-send and may reuse the connection
        body = self.rfile.read(int(length or 0)) if sized and int(length or 0) <= MAX_BODY else None
        if body is not None and len(body) < int(length or 0):  # the client hung up mid-body: nothing to answer
            self.close_connection = True
            return
        base, _, query = self.path.partition("?")
        if self.command != "POST" or base not in ALLOWED[self.provider] or not _QUERY_OK.fullmatch(query):
            msg = f"{self.command} {self.path[:100]} is not allowed"
            return self._refuse(start, 403, "permission_error", msg, "endpoint not allowed", close=body is None)
        if not sized or not length:
            msg = "the request body needs a Content-Length (chunked uploads are not supported)"
            return self._refuse(start, 411, "invalid_request_error", msg, "no content-length", close=not sized)
        if body is None:
            msg = f"request body over {MAX_BODY} bytes"
            return self._refuse(start, 413, "request_too_large", msg, "body too large", close=True)
        conn, prefix = open_connection(self.upstream)  # the URL was checked at start
        try:
            conn.connect()
            assert conn.sock is not None
            conn.sock.settimeout(READ_TIMEOUT)
            conn.putrequest("POST", prefix + self.path)  # http.client adds Host (the upstream's) and Accept-Encoding
            for name, value in self._upstream_headers():
                conn.putheader(name, value)
            conn.putheader("Content-Length", str(len(body)))
            conn.endheaders(body)
            resp = conn.getresponse()
        except (OSError, http.client.HTTPException, ValueError) as e:
            conn.close()
            self._account(UsageMeter(False), 502, body, error="connection_error")
            why = f"{type(e).__name__}: {e}"
            return self._refuse(start, 502, "api_error", f"upstream unreachable: {why}", f"upstream: {why}"[:300])
        meter = UsageMeter("text/event-stream" in (resp.getheader("Content-Type") or ""))
        metered = base != "/v1/messages/count_tokens"  # every answer that bills tokens

        def finished(complete: bool) -> None:
            meter.finish()
            self._log(resp.status, start, **({} if complete else {"incomplete": True}))
            if metered or resp.status == 429 or resp.status >= 500:
                self._account(meter, resp.status, body, retry_after=resp.getheader("Retry-After"), complete=complete)

        try:
            self._relay(resp, meter, finished)
        finally:
            conn.close()

    def _upstream_headers(self) -> list[tuple[str, str]]:
        named = {t.strip().lower() for t in self.headers.get("Connection", "").split(",")}  # more hop-by-hop
        out = [(k, v) for k, v in self.headers.items() if k.lower() not in STRIPPED | named]
        added = self.credentials.current()
        if self.credentials.oauth:  # merged into the client's betas, which are kept
            betas = [t.strip() for k, v in out if k.lower() == "anthropic-beta" for t in v.split(",") if t.strip()]
            out = [(k, v) for k, v in out if k.lower() != "anthropic-beta"]
            added["anthropic-beta"] = ",".join(dict.fromkeys([*betas, OAUTH_BETA]))
        return out + list(added.items())

    def _relay(self, resp: http.client.HTTPResponse, meter: UsageMeter, finished: Callable[[bool], None]) -> None:
        """Status, headers, then the body as it arrives. `finished(complete)` runs once: before the client has the
        last bytes of a whole body, so whoever saw the answer end finds its usage line written."""
        length = None if resp.chunked else resp.length
        chunked = length is None and self.request_version >= "HTTP/1.1"
        self.send_response_only(resp.status, resp.reason)
        for name, value in resp.getheaders():
            if name.lower() not in STRIPPED:
                self.send_header(name, value)
        if length is not None:
            self.send_header("Content-Length", str(length))
        else:  # HTTP/1.0: the end of the connection is the end of the body
            self.send_header(*(("Transfer-Encoding", "chunked") if chunked else ("Connection", "close")))
        self.end_headers()
        done = False
        try:
            while data := resp.read1(CHUNK):  # whatever has arrived: an SSE event is never held back
                meter.feed(data)
                if resp.length == 0:  # the last bytes of a sized body
                    done = True
                    finished(True)
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data) if chunked else data)  # an unbuffered socket
            if resp.length:  # the upstream closed before its Content-Length was reached
                raise http.client.IncompleteRead(b"", resp.length)
            if not done:
                done = True
                finished(True)
            if chunked:
                self.wfile.write(b"0\r\n\r\n")
        except (OSError, http.client.HTTPException):
            self.close_connection = True  # the client sees a cut answer, not a short one
            if not done:
                finished(False)

    def _account(self, meter: UsageMeter, status: int, request: bytes, **extra: Any) -> None:
        """One usage line: the tokens of a message, or a failure (429/5xx/unreachable) the loop can tell apart."""
        u, model = meter.usage, meter.model
        if not model:  # a failure has no answer to name it: the request does
            try:
                model = str(json.loads(request).get("model") or "")
            except (ValueError, AttributeError):
                pass
        line: dict[str, Any] = {"time": now_iso(), "model": model}
        for key in TOKEN_KEYS[self.provider]:
            line[key] = u[key] if isinstance(u.get(key), int) else 0
        line.update({k: u[k] for k in ("cache_creation", "server_tool_use", "inference_geo") if k in u})  # pricing
        line["status"] = status
        if extra.get("error") or meter.error:
            line["error"] = extra.get("error") or meter.error
        if (ra := extra.get("retry_after")) is not None:
            line["retry_after"] = int(ra) if ra.strip().isdigit() else ra  # seconds, or an HTTP date as sent
        if extra.get("complete") is False:
            line["incomplete"] = True
        append_jsonl(self.usage_file, line)


class UnixHTTPServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True  # a stream in flight must not hold up shutdown


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
    socket_path: str | Path, method: str, path: str, body: bytes | None = None,
    headers: Mapping[str, str] | None = None, timeout: float = 60.0,
) -> tuple[int, dict[str, str], bytes]:  # fmt: skip
    """One request through a unix socket: (status, headers with lower-cased names, body)."""
    conn = UnixHTTPConnection(socket_path, timeout)
    try:
        conn.request(method, path, body, dict(headers or {}))
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def serve_unix(path: Path, handler: type[BaseHTTPRequestHandler]) -> UnixHTTPServer:
    """Bind and listen on a side name, then rename into place: the socket appears only once it accepts."""
    side = path.with_name(f".broker-{os.getpid()}.sock")
    side.unlink(missing_ok=True)
    server = UnixHTTPServer(str(side), handler)
    os.chmod(side, 0o666)  # the container's user is not ours; the folder's mode decides who gets this far
    os.replace(side, path)
    server.server_address = str(path)
    return server


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m arl.sandbox.broker", description=(__doc__ or "").split("\n")[0])
    p.add_argument("--socket", type=Path, required=True)
    p.add_argument("--upstream", required=True, help="e.g. https://api.anthropic.com")
    p.add_argument("--log", type=Path, required=True, help="JSON lines: every request, forwarded or refused")
    p.add_argument("--usage", type=Path, required=True, help="JSON lines: tokens per message, and API failures")
    p.add_argument("--provider", choices=sorted(ALLOWED), default="anthropic")
    p.add_argument("--tcp", help="HOST:PORT to listen on as well (port 0: any; the ready line says which)")
    p.add_argument("--credentials-file", type=Path, help="Claude OAuth credentials (JSON), refreshed in place")
    p.add_argument("--oauth-token-url", default=OAUTH_TOKEN_URL)
    args = p.parse_args(argv)
    try:
        open_connection(args.upstream)
    except ValueError as e:
        p.error(str(e))
    creds = Credentials(args.provider, os.environ, args.credentials_file, args.oauth_token_url)
    config = {"provider": args.provider, "upstream": args.upstream, "log_file": args.log, "usage_file": args.usage}
    handler = type("BrokerHandler", (Handler,), {**config, "credentials": creds})
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    servers: list[socketserver.BaseServer] = []
    try:
        where = [f"unix:{args.socket}"]
        if args.tcp:
            host, _, port = args.tcp.rpartition(":")
            tcp = ThreadingHTTPServer((host or "127.0.0.1", int(port)), handler)
            servers.append(tcp)
            where.append(f"tcp:{tcp.server_address[0]}:{tcp.server_address[1]}")
        servers.append(serve_unix(args.socket, handler))
        for server in servers:
            threading.Thread(target=server.serve_forever, args=(0.1,), daemon=True).start()
        print(f"arl.broker: {args.provider} -> {args.upstream}, listening on {' '.join(where)}", flush=True)
        while not stop.wait(1.0):  # a timed wait, so the signal handler gets to run
            pass
        for server in servers:
            server.shutdown()  # waits for serve_forever to return: only for servers that are serving
    finally:
        for server in servers:
            server.server_close()
        if any(isinstance(s, UnixHTTPServer) for s in servers):  # ours: a failed bind must not remove another's
            args.socket.unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
