"""A scripted OpenAI Responses API (the boundary codex talks to), streaming as the real one does.

Each POST /v1/responses is answered with the next scripted reply, as server-sent events: response.created, the
text as response.output_text.delta events, then response.completed carrying the model and the usage
({input_tokens, input_tokens_details.cached_tokens, output_tokens, ...}). Every request is recorded."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    text: str  # tests/agents/fake_codex.py runs a reply that starts with "$ " as a shell command
    input_tokens: int = 0
    cached_tokens: int = 0
    output_tokens: int = 0

    def usage(self) -> dict[str, Any]:
        return {
            "input_tokens": self.input_tokens,
            "input_tokens_details": {"cached_tokens": self.cached_tokens},
            "output_tokens": self.output_tokens,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": self.input_tokens + self.output_tokens,
        }

    def tokens(self) -> dict[str, int]:  # codex's names, as pricing.openai_cost reads them
        return {
            "input_tokens": self.input_tokens,
            "cached_input_tokens": self.cached_tokens,
            "output_tokens": self.output_tokens,
        }


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: Any
    served: Reply | None = None


@dataclass
class FakeOpenAI:
    script: list[Reply]
    requests: list[Seen] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __enter__(self) -> FakeOpenAI:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    @property
    def base_url(self) -> str:  # as OPENAI_BASE_URL is written: with /v1
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _send(self, status: int, ctype: str, data: bytes) -> None:
                self.send_response(status)
                self.send_header("content-type", ctype)
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                api.requests.append(Seen("GET", self.path, {k.lower(): v for k, v in self.headers.items()}, None))
                self._send(200, "application/json", b'{"object":"list","data":[]}')

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("content-length") or 0))
                seen = Seen(
                    "POST", self.path, {k.lower(): v for k, v in self.headers.items()}, json.loads(raw or b"{}")
                )
                with api.lock:
                    api.requests.append(seen)
                    n = sum(1 for r in api.requests if r.method == "POST") - 1
                if self.path != "/v1/responses":
                    return self._send(404, "application/json", b'{"error":{"message":"not found"}}')
                reply = seen.served = api.script[min(n, len(api.script) - 1)]
                model = str(seen.body.get("model", ""))
                events: list[dict[str, Any]] = [{"type": "response.created", "response": {"id": f"resp_{n}"}}]
                events += [{"type": "response.output_text.delta", "delta": reply.text[i : i + 40]}
                           for i in range(0, len(reply.text), 40)]  # fmt: skip
                done = {"id": f"resp_{n}", "model": model, "status": "completed", "usage": reply.usage()}
                events.append({"type": "response.completed", "response": done})
                self.send_response(200)
                self.send_header("content-type", "text/event-stream")
                self.send_header("transfer-encoding", "chunked")
                self.end_headers()
                for ev in events:
                    data = f"event: {ev['type']}\ndata: {json.dumps(ev)}\n\n".encode()
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                    self.wfile.flush()
                self.wfile.write(b"0\r\n\r\n")

        return Handler
