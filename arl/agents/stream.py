"""Helpers shared by the adapters that read a JSON-lines stream: tolerant parsing and one-line summaries."""

from __future__ import annotations

import json
from typing import Any

from arl.agents.base import Event, StreamAccount

# Fields that say best what a tool call does, in the order they are tried (Bash command, Read/Edit path, ...)
_SUMMARY_KEYS = ("command", "file_path", "notebook_path", "path", "pattern", "url", "query", "prompt", "description")


def json_object(line: str) -> dict[str, Any] | None:
    """The line as a JSON object, or None for anything else (blank, noise, truncated, an array, a number)."""
    line = line.strip()
    if not line.startswith("{"):
        return None
    try:
        obj = json.loads(line)
    except ValueError:
        return None
    return obj if isinstance(obj, dict) else None


def first_line(value: Any, limit: int = 200) -> str:
    """The first non-empty line of a text, shortened for a live one-line view."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    for line in text.splitlines():
        if line.strip():
            text = line.strip()
            break
    else:
        return ""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def tool_summary(name: str, tool_input: Any) -> str:
    """`Bash: pytest -q`, `Edit: /workspace/pipeline/model.py`: the tool and the first line of what it was given."""
    detail: Any = tool_input
    if isinstance(tool_input, dict):
        detail = next((tool_input[k] for k in _SUMMARY_KEYS if isinstance(tool_input.get(k), str)), tool_input)
    shown = first_line(detail)
    return f"{name}: {shown}" if shown and shown != "{}" else name


def content_text(content: Any) -> str:
    """The text of a tool result's `content`: a string, or a list of blocks of which the text ones count."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(b.get("text", "") for b in content if isinstance(b, dict) and b.get("type") == "text")
    return ""


def as_int(value: Any) -> int:
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0


def end_without_final(exit_code: int | None) -> str:
    """How a process ended that printed no final line: stopped from outside, timed out, or failed by itself.

    None means it is still running or was killed before it could exit; 128+N and negative codes are deaths by
    signal N (docker --init relays SIGINT/SIGTERM/SIGKILL); 124 is timeout(1)'s code. The loop, which knows when it
    stopped a container for the iteration timeout, may still call that end a timeout."""
    if exit_code is None or exit_code < 0 or exit_code >= 128:
        return "killed"
    if exit_code == 124:
        return "timeout"
    return "error"


class JsonLinesReader:
    """The reading half of an adapter whose agent prints one JSON object a line: each object becomes events (by
    `events`, the adapter's own), counted; the end is classified from the agent's final event (by `final_end`)."""

    def events(self, obj: dict[str, Any], acc: StreamAccount) -> list[Event]:
        raise NotImplementedError

    def final_end(self, final: dict[str, Any], acc: StreamAccount, exit_code: int | None) -> str:
        raise NotImplementedError

    def parse_line(self, line: str, acc: StreamAccount) -> list[Event]:
        obj = json_object(line)
        if obj is None:
            return []  # a terminal, wrapper or runtime printed something that is not ours: ignore it
        found = self.events(obj, acc)
        acc.events += len(found)
        return found

    def end_class(self, acc: StreamAccount, exit_code: int | None) -> str:
        if acc.final is None:
            return end_without_final(exit_code)
        return self.final_end(acc.final, acc, exit_code)
