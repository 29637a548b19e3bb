"""A scripted Anthropic-compatible Messages API server (stdlib only): the one boundary the tests fake.

It answers `POST /v1/messages` with `stream: true` exactly as the real API streams (server-sent events:
message_start with usage, content_block_start/delta/stop for text and tool_use (input_json_delta), message_delta with
stop_reason and the final usage, message_stop), following a *script*: a list of turns, each a list of content blocks
with given usage numbers. Every request is recorded (path, headers incl. x-api-key, parsed body) for assertions.

Claude Code makes side calls besides the agent's turns (a small-model request, token counting, probes). Only requests
that carry `tools` advance the script: the agent loop always sends its tool list, side calls do not. Side calls get a
short text reply with zero usage, so they never change the cost the test expects.

Per-conversation scripts (`conversations=[...]`): each Claude Code process is its own conversation (the
`x-claude-code-session-id` header), and a request's turn is the number of assistant messages it carries, so a
new process (no prior messages) starts its script from the top, and a retried request gets the same turn again.
Conversation k follows `conversations[k]`, the last script serving every later one. `host="0.0.0.0"` binds the
server where a container can reach it (`url_for(host)` gives the URL to pass in).

Run it alone to poke at a CLI by hand: `python tests/fake_anthropic.py` prints its base URL."""

from __future__ import annotations

import itertools
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0
    cache_write_1h: int = 0  # the part of cache_creation_input_tokens written with the 1-hour TTL

    def as_dict(self) -> dict[str, Any]:
        five_minutes = self.cache_creation_input_tokens - self.cache_write_1h
        return {
            "input_tokens": self.input_tokens,
            "cache_creation_input_tokens": self.cache_creation_input_tokens,
            "cache_read_input_tokens": self.cache_read_input_tokens,
            "cache_creation": {
                "ephemeral_5m_input_tokens": five_minutes,
                "ephemeral_1h_input_tokens": self.cache_write_1h,
            },
            "output_tokens": self.output_tokens,
            "service_tier": "standard",
        }


@dataclass
class Turn:
    blocks: list[dict[str, Any]]
    usage: Usage = field(default_factory=Usage)
    status: int = 200  # non-200: answer this turn with an API error of that status instead
    error_type: str = "api_error"


def text(s: str) -> dict[str, Any]:
    return {"type": "text", "text": s}


def bash(command: str, description: str = "run a command") -> dict[str, Any]:
    return {"type": "tool_use", "name": "Bash", "input": {"command": command, "description": description}}


def error_turn(status: int, error_type: str = "api_error") -> Turn:
    return Turn(blocks=[], status=status, error_type=error_type)


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]  # lower-cased names
    body: Any
    main: bool  # counted as a script turn
    session: str = ""  # x-claude-code-session-id: one per Claude Code process
    conversation: int | None = None  # per-conversation mode: which conversation (0, 1, ...) this request is in
    turn: int | None = None  # the index of the script turn it was answered with
    served: Turn | None = None  # what it was answered with (main requests)


class FakeAnthropic:
    """Start with `with FakeAnthropic(script) as api:`; `api.base_url` goes into ANTHROPIC_BASE_URL."""

    def __init__(
        self,
        script: list[Turn] | None = None,
        chunk: int = 12,
        host: str = "127.0.0.1",
        conversations: list[list[Turn]] | None = None,
    ) -> None:
        if (script is None) == (conversations is None):
            raise ValueError("give either a script or per-conversation scripts")
        self.script = list(script or [])
        self.conversations = [list(c) for c in conversations or []]
        self.chunk = chunk  # characters per text/json delta, so the client sees a real multi-delta stream
        self.requests: list[Request] = []
        self.turn_index = 0
        self.sessions: list[str] = []  # per-conversation mode: session ids in the order they first called
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._server = ThreadingHTTPServer((host, 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> FakeAnthropic:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def url_for(self, host: str) -> str:
        """The base URL as a client elsewhere sees it (e.g. host.docker.internal from a container)."""
        return f"http://{host}:{self.port}"

    def main_requests(self) -> list[Request]:
        with self._lock:
            return [r for r in self.requests if r.main]

    def served_usages(self) -> list[tuple[str, dict[str, Any]]]:
        """(model, usage) of every scripted message the server streamed, in order: what a client was billed."""
        return [
            (str(r.body.get("model", "")), r.served.usage.as_dict())
            for r in self.main_requests()
            if r.served is not None and r.served.status == 200 and isinstance(r.body, dict)
        ]

    def conversation_turn(self, req: Request) -> Turn:
        """Per-conversation mode: the turn is the number of assistant messages so far in this conversation."""
        messages = req.body.get("messages") if isinstance(req.body, dict) else None
        done = sum(1 for m in messages or [] if isinstance(m, dict) and m.get("role") == "assistant")
        with self._lock:
            if req.session not in self.sessions:
                self.sessions.append(req.session)
            req.conversation = self.sessions.index(req.session)
            script = self.conversations[min(req.conversation, len(self.conversations) - 1)]
            req.turn = done
            return script[done] if done < len(script) else Turn([text("(script exhausted)")])

    def next_turn(self) -> Turn:
        with self._lock:
            if self.turn_index < len(self.script):
                turn = self.script[self.turn_index]
            else:  # past the script: end the conversation politely rather than hang the client
                turn = Turn([text("(script exhausted)")])
            self.turn_index += 1
            return turn

    def new_id(self, prefix: str) -> str:
        return f"{prefix}_fake{next(self._ids):020d}"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # keep pytest output clean
                pass

            def _record(self) -> Request:
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body: Any = json.loads(raw) if raw else None
                except ValueError:
                    body = raw.decode(errors="replace")
                # Claude Code calls /v1/messages?beta=true; the agent loop is the request that carries tools
                main = self.path.split("?")[0] == "/v1/messages" and isinstance(body, dict) and bool(body.get("tools"))
                headers = {k.lower(): v for k, v in self.headers.items()}
                req = Request(self.command, self.path, headers, body, main, headers.get("x-claude-code-session-id", ""))
                with api._lock:
                    api.requests.append(req)
                return req

            def _json(self, status: int, obj: Any) -> None:
                data = json.dumps(obj).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("request-id", api.new_id("req"))
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_HEAD(self) -> None:
                self._record()
                self.send_response(200)
                self.send_header("content-length", "0")
                self.end_headers()

            def do_GET(self) -> None:
                self._record()
                if self.path.startswith("/v1/models"):
                    self._json(200, {"data": [], "has_more": False, "first_id": None, "last_id": None})
                else:
                    self._json(404, {"type": "error", "error": {"type": "not_found_error", "message": "not found"}})

            def do_POST(self) -> None:
                req = self._record()
                path = self.path.split("?")[0]
                body = req.body if isinstance(req.body, dict) else {}
                if path == "/v1/messages/count_tokens":
                    self._json(200, {"input_tokens": 100})
                elif path == "/v1/messages":
                    if not req.main:
                        turn = Turn([text("ok")])
                    elif api.conversations:
                        turn = api.conversation_turn(req)
                    else:
                        turn = api.next_turn()
                    req.served = turn if req.main else None
                    if turn.status != 200:
                        err = {"type": turn.error_type, "message": f"scripted error {turn.status}"}
                        self._json(turn.status, {"type": "error", "error": err})
                    elif body.get("stream"):
                        self._stream(str(body.get("model", "")), turn)
                    else:
                        self._json(200, api.message_object(str(body.get("model", "")), turn))
                else:
                    self._json(404, {"type": "error", "error": {"type": "not_found_error", "message": "not found"}})

            def _stream(self, model: str, turn: Turn) -> None:
                self.send_response(200)
                self.send_header("content-type", "text/event-stream")
                self.send_header("cache-control", "no-cache")
                self.send_header("request-id", api.new_id("req"))
                self.send_header("connection", "close")  # the stream ends when we close
                self.end_headers()
                self.close_connection = True
                for name, payload in api.sse_events(model, turn):
                    self.wfile.write(f"event: {name}\ndata: {json.dumps(payload)}\n\n".encode())
                    self.wfile.flush()

        return Handler

    def message_object(self, model: str, turn: Turn) -> dict[str, Any]:
        content = [self._block(b) for b in turn.blocks]
        stop = "tool_use" if any(b["type"] == "tool_use" for b in content) else "end_turn"
        return {
            "id": self.new_id("msg"),
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": content,
            "stop_reason": stop,
            "stop_sequence": None,
            "usage": turn.usage.as_dict(),
        }

    def _block(self, block: dict[str, Any]) -> dict[str, Any]:
        if block["type"] == "tool_use":
            return {"type": "tool_use", "id": self.new_id("toolu"), "name": block["name"], "input": block["input"]}
        return dict(block)

    def sse_events(self, model: str, turn: Turn) -> list[tuple[str, dict[str, Any]]]:
        """The event sequence of one streamed message, as the Messages API sends it."""
        msg = self.message_object(model, turn)
        usage = turn.usage.as_dict()
        # message_start carries the input side and a provisional output count, like the real API
        start_usage = {**usage, "output_tokens": min(1, turn.usage.output_tokens)}
        start = {**msg, "content": [], "stop_reason": None, "usage": start_usage}
        events: list[tuple[str, dict[str, Any]]] = [("message_start", {"type": "message_start", "message": start})]
        events.append(("ping", {"type": "ping"}))
        for i, block in enumerate(msg["content"]):
            if block["type"] == "tool_use":
                opened = {**block, "input": {}}
                payload, delta_type, key = json.dumps(block["input"]), "input_json_delta", "partial_json"
            else:
                opened = {"type": "text", "text": ""}
                payload, delta_type, key = block["text"], "text_delta", "text"
            events.append(("content_block_start", {"type": "content_block_start", "index": i, "content_block": opened}))
            for j in range(0, len(payload), self.chunk):
                delta = {"type": delta_type, key: payload[j : j + self.chunk]}
                events.append(("content_block_delta", {"type": "content_block_delta", "index": i, "delta": delta}))
            events.append(("content_block_stop", {"type": "content_block_stop", "index": i}))
        delta = {"stop_reason": msg["stop_reason"], "stop_sequence": None}
        events.append(("message_delta", {"type": "message_delta", "delta": delta, "usage": usage}))
        events.append(("message_stop", {"type": "message_stop"}))
        return events


if __name__ == "__main__":  # manual use: a server that runs `echo hello`, then says done
    import time

    demo = [Turn([text("Running it."), bash("echo hello")], Usage(1000, 50, 2000, 0)), Turn([text("Done.")])]
    with FakeAnthropic(demo) as server:
        print(server.base_url, flush=True)
        try:
            while True:
                time.sleep(1)
        except KeyboardInterrupt:
            for r in server.requests:
                print(r.method, r.path, r.main, json.dumps(r.body)[:300] if r.body else "")
