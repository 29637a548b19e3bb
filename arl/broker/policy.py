"""What the API broker (arl/broker/broker.py) lets through, decided per request: a strictly parsed head, the models
the run allows, no provider-side tool unless the web is allowed, and the run's budget.

Every check answers with the reason the agent is shown (in the API's error shape); None means go on."""

from __future__ import annotations

import fnmatch
import json
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from email.message import Message
from pathlib import Path
from typing import Any

_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # an HTTP header name (RFC 9110 token)
_VALUE = re.compile(r"[\t\x20-\x7e]*")  # printable ASCII and tabs: no CR, LF, NUL or bytes a parser may read twice
_DIGITS = re.compile(r"[0-9]{1,12}")  # ASCII digits only: int() would also take "²", "٣" or " 1_0 "
# Headers a client has no business sending to an API: who forwarded what is the broker's to say, and it says nothing.
_DROPPED_PREFIXES = ("x-forwarded-", "forwarded", "x-real-ip", "via")
# Tool types that run on the client: the agent executes them in the sandbox. Every other type (web_search_*,
# web_fetch_*, code_execution_*, computer_*, mcp, file_search, image_generation...) has the provider act for it.
# What Codex CLI 0.163.0 sends (tests/streams/codex_request_0.163.0.json): function tools, a namespace of function
# tools, and web_search unless it runs with `-c web_search="disabled"`.
CLIENT_TOOL_TYPES = {"anthropic": {"custom"}, "openai": {"function", "custom", "local_shell"}}


def dropped(name: str) -> bool:
    return name.lower().startswith(_DROPPED_PREFIXES)


def head_problem(headers: Message) -> str | None:
    """A head arl forwards only when it parses one way: tokens for names, plain values, no folding, one length."""
    if headers.defects or headers.get_payload():  # a line that is no header ends the parse early: the rest is hidden
        return "malformed request head"
    for name, value in headers.items():
        if not _TOKEN.fullmatch(name):
            return "malformed header name"
        if not _VALUE.fullmatch(value):  # a folded header keeps its CR LF in the value
            return f"header {name[:40]} has a folded or non-ASCII value"
    if len(headers.get_all("Content-Length") or []) > 1:
        return "more than one Content-Length"
    length = headers.get("Content-Length")
    if length is not None and not _DIGITS.fullmatch(length):
        return "Content-Length must be ASCII digits"
    return None


def model_allowed(model: str, allowed: list[str]) -> bool:
    """`allowed` holds ids (a dated or suffixed id of the same model matches), globs, or aliases such as `sonnet`."""
    m = model.strip().lower()
    for entry in (e.strip().lower() for e in allowed):
        if m == entry or m.startswith((entry + "-", entry + "@", entry + "[")) or fnmatch.fnmatchcase(m, entry):
            return True
        if entry.isalpha() and entry in re.split(r"[-.@]", m):  # an alias: `haiku` for claude-haiku-4-5
            return True
    return False


@dataclass
class Budget:
    """The run's spend as the broker counts it: what the run had spent before this broker started, plus every
    answer it relayed since, priced as arl prices them. Past `limit` (0: none) nothing more is forwarded."""

    limit: float = 0.0
    spent_before: float = 0.0
    price: Callable[[str, Mapping[str, Any]], float] | None = None
    marker: Path | None = None  # written once the budget is spent: the loop stops the run on it
    per_slot: dict[int, float] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _written: float = -1.0

    def add(self, slot: int, model: str, usage: Mapping[str, Any]) -> None:
        if self.price is None:
            return
        usd = self.price(model, usage)
        with self._lock:
            self.per_slot[slot] = self.per_slot.get(slot, 0.0) + usd
        self.exhausted()

    def total(self) -> float:
        with self._lock:
            return self.spent_before + sum(self.per_slot.values())

    def exhausted(self) -> bool:
        total = self.total()
        if not self.limit or total < self.limit:
            return False
        with self._lock:
            total = self.spent_before + sum(self.per_slot.values())  # the calls in flight still add theirs
            if self.marker is not None and total != self._written:
                self._written = total
                tmp = self.marker.with_name(f".{self.marker.name}.tmp")
                tmp.write_text(json.dumps({"spent": total, "limit": self.limit, "slots": self.per_slot}))
                tmp.replace(self.marker)
        return True


@dataclass
class Policy:
    provider: str = "anthropic"
    models: list[str] | None = None  # None: any model
    allow_web: bool = False
    budget: Budget = field(default_factory=Budget)

    def body_problem(self, body: bytes) -> str | None:
        """Why this request body is not forwarded, or None. Only a JSON object is an API request."""
        try:
            req = json.loads(body)
        except ValueError:
            return "the request body is not JSON"
        if not isinstance(req, dict):
            return "the request body is not a JSON object"
        model = req.get("model")
        if self.models is not None and not (isinstance(model, str) and model_allowed(model, self.models)):
            return f"model {str(model)[:80]!r} is not allowed in this run (allowed: {', '.join(self.models)})"
        tools = req.get("tools") or []
        if not isinstance(tools, list):
            return "tools must be a list"
        kind = None if self.allow_web else server_tool(tools, self.provider)
        if kind is not None:
            return (
                f"tool type {kind[:60]!r} runs on the provider's servers and is not allowed here "
                "([agent] allow_web = false): only tools the agent runs itself"
            )
        return None


def server_tool(tools: list[Any], provider: str, depth: int = 0) -> str | None:
    """The first tool type in `tools` that is not the client's own, or None. Codex groups some of its function tools
    under a `namespace` (multi_agent_v1): allowed when every tool inside it is the client's own."""
    for tool in tools:
        kind = tool.get("type", "custom") if isinstance(tool, dict) else None
        if kind == "namespace" and provider == "openai" and depth == 0:
            inner = tool.get("tools")
            found = server_tool(inner, provider, 1) if isinstance(inner, list) else "namespace without tools"
            if found is not None:
                return found
        elif kind not in CLIENT_TOOL_TYPES[provider]:
            return str(kind)
    return None
