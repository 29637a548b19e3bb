"""The API broker's own count (arl/broker.py): token usage per message parsed from the answers as they pass,
and every upstream failure, as JSON lines; and reading that file back (a second, independent cost count).

Anthropic's Messages API reports usage in message_start and message_delta (cumulative); OpenAI's Responses API in
its `response.completed` event (or the response object), Chat Completions in a chunk's `usage`. OpenAI's counts are
kept under codex's names (input_tokens, cached_input_tokens, output_tokens: what pricing.openai_cost reads)."""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from arl.util.fsutil import appended_lines

MAX_BODY = 32 * 1024 * 1024
_write_lock = threading.Lock()


def now_iso() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def append_jsonl(path: Path, obj: Mapping[str, Any]) -> None:
    with _write_lock, open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(obj) + "\n")


class UsageMeter:
    """Token usage of one API response, fed the body as it passes. SSE is cut into lines and events on the fly (a
    partial line waits for its end) and only events that can carry usage or an error are decoded; a plain JSON body
    is kept (capped) and decoded at the end."""

    def __init__(self, sse: bool) -> None:
        self.sse, self.model, self.error = sse, "", ""
        self.usage: dict[str, Any] = {}
        self._buf, self._data = bytearray(), list[bytes]()

    def feed(self, chunk: bytes) -> None:
        if not self.sse or b"\n" not in chunk:
            if self.sse or len(self._buf) < MAX_BODY:
                self._buf += chunk
            return
        *lines, rest = (self._buf + chunk).split(b"\n")
        self._buf = rest
        for line in lines:
            line = line.rstrip(b"\r")
            if line.startswith(b"data:"):
                self._data.append(bytes(line[5:]).removeprefix(b" "))
            elif not line:  # a blank line ends an event; skip decoding the many content deltas
                data, self._data = b"\n".join(self._data), []
                if b'"message_' in data or b'"error"' in data or b'"usage"' in data:
                    self._take(data)

    def finish(self) -> None:
        if self.sse:
            self.feed(b"\n\n")  # an unterminated last event still counts
        elif self._buf:
            self._take(bytes(self._buf))

    def _take(self, raw: bytes) -> None:
        try:
            obj = json.loads(raw)
        except ValueError:
            return
        if not isinstance(obj, dict):
            return
        kind = obj.get("type")
        if kind in ("response.completed", "response.incomplete", "response.failed") or obj.get("object") in (
            "response",
            "chat.completion",
            "chat.completion.chunk",
        ):
            inner = obj.get("response")
            return self._take_openai(inner if isinstance(inner, dict) else obj)
        msg = obj.get("message") if kind == "message_start" else obj if kind == "message" else None
        if isinstance(msg, dict):
            self.model = str(msg.get("model") or self.model)
        usage = msg.get("usage") if isinstance(msg, dict) else obj.get("usage") if kind == "message_delta" else None
        if isinstance(usage, dict):  # message_delta's counts are cumulative: they replace message_start's
            self.usage.update({k: v for k, v in usage.items() if v is not None})
        if kind == "error":  # Anthropic nests {type, message}; OpenAI's stream says {code, message}
            err = obj.get("error")
            self.error = str(err.get("type", "")) if isinstance(err, dict) else str(obj.get("code") or "error")

    def _take_openai(self, obj: dict[str, Any]) -> None:
        self.model = str(obj.get("model") or self.model)
        if obj.get("status") == "failed" and isinstance(obj.get("error"), dict):
            self.error = str(obj["error"].get("code") or "failed")
        usage = obj.get("usage")
        if not isinstance(usage, dict):
            return
        details = usage.get("input_tokens_details") or usage.get("prompt_tokens_details") or {}
        cached = details.get("cached_tokens") if isinstance(details, dict) else None
        self.usage = {
            "input_tokens": usage.get("input_tokens", usage.get("prompt_tokens")),
            "cached_input_tokens": cached if isinstance(cached, int) else 0,
            "output_tokens": usage.get("output_tokens", usage.get("completion_tokens")),
        }


_READ: dict[Path, tuple[int, list[tuple[float, dict[str, Any]]]]] = {}  # file -> (bytes read, its records)


def records(path: Path) -> list[tuple[float, dict[str, Any]]]:
    """Every record of a usage file with its time (epoch seconds), parsed once per process: a call reads only what
    was appended since the last (a line being written waits for the next call; a torn or foreign line is skipped).
    The loop asks every few seconds for the records since a session began: a time is parsed once, not each time."""
    done, seen = _READ.get(path, (0, []))
    try:
        if path.stat().st_size < done:  # a new file under the same name: start over
            done, seen = 0, []
    except OSError:
        return seen
    new = appended_lines(path, done)
    for line in new.splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if isinstance(rec, dict):
            seen.append((epoch(rec.get("time")), rec))
    _READ[path] = (done + len(new), seen)
    return seen


def epoch(value: Any) -> float:
    """A record's time in seconds since the epoch (the broker writes ISO-8601 `...Z`; a number is taken as it is)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    try:
        return dt.datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0


def read_usage(path: Path | str) -> list[dict[str, Any]]:
    """The usage records of a file (a copy)."""
    return [rec for _, rec in records(Path(path))]


def usage_cost(path: Path | str, price: Callable[[str, dict[str, Any]], float]) -> float:
    """USD of every message the broker saw, e.g. `usage_cost(p, arl.agents.pricing.claude_cost)`."""
    return sum(price(str(line.get("model", "")), line) for line in read_usage(path))
