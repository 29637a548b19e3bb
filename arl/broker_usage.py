"""The API broker's own count (arl/broker.py): token usage per message parsed from the answers as they pass,
and every upstream failure, as JSON lines; and reading that file back (a second, independent cost count)."""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

MAX_BODY = 32 * 1024 * 1024
_write_lock = threading.Lock()


def now_iso() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def append_jsonl(path: Path, obj: Mapping[str, Any]) -> None:
    with _write_lock, open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(obj) + "\n")


class UsageMeter:
    """Token usage of one Messages API response, fed the body as it passes. SSE is cut into lines and events on the
    fly (a partial line waits for its end) and only message_start / message_delta / error events are decoded; a
    plain JSON body is kept (capped) and decoded at the end."""

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
                if b'"message_' in data or b'"error"' in data:
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
        kind = obj.get("type") if isinstance(obj, dict) else None
        msg = obj.get("message") if kind == "message_start" else obj if kind == "message" else None
        if isinstance(msg, dict):
            self.model = str(msg.get("model") or self.model)
        usage = msg.get("usage") if isinstance(msg, dict) else obj.get("usage") if kind == "message_delta" else None
        if isinstance(usage, dict):  # message_delta's counts are cumulative: they replace message_start's
            self.usage.update({k: v for k, v in usage.items() if v is not None})
        if kind == "error" and isinstance(obj.get("error"), dict):
            self.error = str(obj["error"].get("type", ""))


def read_usage(path: Path | str) -> list[dict[str, Any]]:
    """The usage lines; a torn last line (the broker killed mid-write) is skipped."""
    out = []
    for line in Path(path).read_text(encoding="utf-8").splitlines() if Path(path).exists() else []:
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return [x for x in out if isinstance(x, dict)]


def usage_cost(path: Path | str, price: Callable[[str, dict[str, Any]], float]) -> float:
    """USD of every message the broker saw, e.g. `usage_cost(p, arl.agents.pricing.claude_cost)`."""
    return sum(price(str(line.get("model", "")), line) for line in read_usage(path))
