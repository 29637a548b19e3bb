"""The host-side API broker: the sandboxed agent's only way to its LLM API, and the holder of the real credential.

    python -m arl.broker.broker --socket PATH [--socket PATH...] --upstream URL --log PATH --usage PATH
        [--provider anthropic|openai] [--tcp HOST:PORT] [--credentials-file PATH] [--oauth-token-url URL]
        [--models M,M...] [--allow-web]   (and, run by arl.agents.brokered: --max-cost USD --spent USD --spent-file P)

The agent runs with `--network none` and a placeholder credential, and reaches the broker through a unix socket
mounted into the container: one socket per slot (the Nth --socket is slot N), so every count is per slot. The broker
forwards only the inference endpoints, swaps the client's credential for the host's, streams answers back as they
arrive and counts token usage itself, failures included (the usage file). Method, path and head are checked before
any body byte is read (broker_policy); bodies need a Content-Length (chunked uploads get 411: Claude Code and codex
always send a length), are capped at MAX_BODY and read within BODY_DEADLINE; each slot's connections and body bytes
held are capped (broker_serve). A response without Content-Length is re-framed chunked for HTTP/1.1 clients (their
connection stays reusable), close-delimited for HTTP/1.0 ones. One thread and one upstream connection per request."""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import sys
import time
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

from arl.broker.auth import OAUTH_BETA, OAUTH_TOKEN_URL, Credentials, open_connection
from arl.broker.policy import Budget, Policy, dropped, head_problem
from arl.broker.serve import MAX_HEAD, MAX_INFLIGHT, HeadLimit, SlotLimits, serve
from arl.broker.serve import UnixHTTPConnection as UnixHTTPConnection  # the clients' (tests') import path
from arl.broker.serve import request_unix as request_unix
from arl.broker.usage import MAX_BODY, UsageMeter, append_jsonl, now_iso

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
BODY_DEADLINE = 120.0  # the whole request body: a client that trickles it does not hold its bytes for long
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
    policy: Policy

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
        line["slot"] = self.server.limits.slot  # type: ignore[attr-defined]
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

    def handle_one_request(self) -> None:
        self.rfile.left = MAX_HEAD  # type: ignore[attr-defined]  # the request line and headers, each request
        super().handle_one_request()

    def setup(self) -> None:
        super().setup()
        self.rfile = HeadLimit(self.rfile)  # type: ignore[assignment]

    def _handle(self) -> None:
        start = time.monotonic()
        base, _, query = self.path.partition("?")
        # Everything about the head is checked before a byte of the body is read: a refused request costs nothing.
        if self.command != "POST" or base not in ALLOWED[self.provider] or not _QUERY_OK.fullmatch(query):
            msg = f"{self.command} {self.path[:100]} is not allowed"
            unread = "Transfer-Encoding" in self.headers or self.headers.get("Content-Length", "0") not in ("", "0")
            return self._refuse(start, 403, "permission_error", msg, "endpoint not allowed", close=unread)
        if problem := head_problem(self.headers):
            return self._refuse(start, 400, "invalid_request_error", problem, "bad head", close=True)
        length = self.headers.get("Content-Length")
        if "Transfer-Encoding" in self.headers or not length or not int(length):
            msg = "the request body needs a Content-Length (chunked uploads are not supported)"
            return self._refuse(start, 411, "invalid_request_error", msg, "no content-length", close=True)
        if int(length) > MAX_BODY:
            msg = f"request body over {MAX_BODY} bytes"
            return self._refuse(start, 413, "request_too_large", msg, "body too large", close=True)
        limits: SlotLimits = self.server.limits  # type: ignore[attr-defined]
        if not limits.reserve(int(length)):
            msg = f"this slot's requests hold over {MAX_INFLIGHT} body bytes at once; retry when they are sent"
            return self._refuse(start, 429, "rate_limit_error", msg, "body bytes in flight", close=True)
        try:
            self._forward(start, base, limits.slot, int(length))
        finally:
            limits.release(int(length))

    def _read_body(self, n: int) -> bytes | None:
        """The whole body within BODY_DEADLINE, or None (timed out or cut: the connection is closed)."""
        chunks, got, deadline = [], 0, time.monotonic() + BODY_DEADLINE
        try:
            while got < n:
                self.connection.settimeout(max(deadline - time.monotonic(), 0.001))
                data = self.rfile.read1(min(CHUNK * 16, n - got))  # type: ignore[attr-defined]
                if not data or time.monotonic() > deadline:
                    break
                chunks.append(data)
                got += len(data)
        except OSError:
            pass
        finally:
            self.connection.settimeout(self.timeout)
        return b"".join(chunks) if got == n else None

    def _forward(self, start: float, base: str, slot: int, length: int) -> None:
        body = self._read_body(length)
        if body is None:
            self.close_connection = True
            self._log(408, start, reason=f"body not received within {BODY_DEADLINE:g} s")
            return
        if problem := self.policy.body_problem(body):
            return self._refuse(start, 400, "invalid_request_error", problem, "refused body")
        if self.policy.budget.exhausted():
            msg = (
                f"this run's budget (max_cost ${self.policy.budget.limit:g}) is spent; no more API calls are "
                "forwarded. Stop working: the run is ending"
            )
            return self._refuse(start, 400, "invalid_request_error", msg, "budget spent")
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
        out = [(k, v) for k, v in self.headers.items() if k.lower() not in STRIPPED | named and not dropped(k)]
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
        slot: int = self.server.limits.slot  # type: ignore[attr-defined]
        line: dict[str, Any] = {"time": now_iso(), "model": model, "slot": slot}
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
        self.policy.budget.add(slot, model, line)


Price = Callable[[str, Mapping[str, Any]], float]


def main(argv: list[str] | None = None, prices: Mapping[str, Price] | None = None) -> int:
    """`prices`: provider -> the price of one usage line (arl.agents.brokered passes arl's): what a budget needs."""
    p = argparse.ArgumentParser(prog="python -m arl.broker.broker", description=(__doc__ or "").split("\n")[0])
    p.add_argument("--socket", type=Path, required=True, action="append", help="one per slot, slot 0 first")
    p.add_argument("--upstream", required=True, help="e.g. https://api.anthropic.com")
    p.add_argument("--log", type=Path, required=True, help="JSON lines: every request, forwarded or refused")
    p.add_argument("--usage", type=Path, required=True, help="JSON lines: tokens per message, and API failures")
    p.add_argument("--provider", choices=sorted(ALLOWED), default="anthropic")
    p.add_argument("--tcp", help="HOST:PORT to listen on as well, as slot 0 (port 0: any; the ready line says which)")
    p.add_argument("--credentials-file", type=Path, help="Claude OAuth credentials (JSON), refreshed in place")
    p.add_argument("--oauth-token-url", default=OAUTH_TOKEN_URL)
    p.add_argument("--models", help="comma-separated model ids, globs or aliases the requests may name (default: any)")
    p.add_argument("--allow-web", action="store_true", help="forward the provider's server-side tools too")
    p.add_argument("--max-cost", type=float, default=0.0, help="USD the run may spend (0: no limit)")
    p.add_argument("--spent", type=float, default=0.0, help="USD the run had spent before this broker started")
    p.add_argument("--spent-file", type=Path, help="written once the budget is spent")
    p.add_argument("--first-slot", type=int, default=0, help="the slot of the first --socket (default 0)")
    args = p.parse_args(argv)
    try:
        open_connection(args.upstream)
    except ValueError as e:
        p.error(str(e))
    price = (prices or {}).get(args.provider)
    if args.max_cost and price is None:
        p.error("--max-cost needs arl's prices: run arl.agents.brokered")
    budget = Budget(args.max_cost, args.spent, price, args.spent_file)
    models = [m.strip() for m in args.models.split(",") if m.strip()] if args.models else None
    policy = Policy(args.provider, models, args.allow_web, budget)
    creds = Credentials(args.provider, os.environ, args.credentials_file, args.oauth_token_url)
    config = {"provider": args.provider, "upstream": args.upstream, "log_file": args.log, "usage_file": args.usage}
    handler = type("BrokerHandler", (Handler,), {**config, "credentials": creds, "policy": policy})
    where = f"{args.provider} -> {args.upstream}"

    def ready(listening: str) -> None:
        print(f"arl.broker: {where}, listening on {listening}")

    serve(args.socket, args.tcp, handler, ready, args.first_slot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
