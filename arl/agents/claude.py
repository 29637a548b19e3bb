"""The `claude` adapter: Claude Code in print mode, reading its stream-json output.

Stream facts this parser relies on (checked against the real CLI, see tests/streams/record_claude.py):
- `system`/`init` opens the stream; `system`/`api_retry` reports each retried API call (attempt, error_status).
- Each content block of an API message is its own `assistant` line; all of them carry the same `message.id` and
  the same usage, copied from the API's message_start (so output_tokens is the provisional count, 1 or so). Usage is
  kept per message id and never summed across lines.
- The final output count of a message is only in the API's message_delta, which Claude Code prints (as a
  `stream_event` line carrying `api_message_id`) only with partial messages on: the adapter turns them on with
  CLAUDE_CODE_INCLUDE_PARTIAL_MESSAGES=1 (the environment twin of --include-partial-messages, so the command line
  stays as documented). Without it, every Claude process that does not end by itself (and in the loop none does:
  the host freezes and removes it, or it is killed) would be priced at ~1 output token per message, the dearest
  part of the bill missing, and `max_cost` would stop the run late. A message's final usage is never replaced by
  the provisional copy its block lines repeat. The content deltas themselves are skipped unparsed.
- `user` lines carry tool results. A failed API call ends as a synthetic assistant message (model "<synthetic>").
- The final `result` line: `is_error` is authoritative (an API error ends with subtype "success" and is_error true),
  `subtype` names limits (error_max_turns, error_max_budget_usd), `total_cost_usd` is Claude Code's own total, and
  `terminal_reason` "aborted_*" marks a run interrupted by SIGINT. SIGTERM/SIGKILL leave no result line at all.
Credentials: arl/agents/claude_auth.py."""

from __future__ import annotations

import math
from typing import Any

from arl.agents.base import AgentContext, Event, LaunchSpec, Mount, StreamAccount
from arl.agents.claude_auth import add_credentials as _add_credentials
from arl.agents.claude_auth import broker_credentials
from arl.agents.pricing import claude_cost
from arl.agents.stream import JsonLinesReader, as_int, content_text, first_line, tool_summary
from arl.broker.process import MOUNT as BROKER_MOUNT
from arl.broker.process import SOCKET as BROKER_SOCKET
from arl.broker.process import slot_folder

FINAL = "arl_final"  # marks a usage entry that holds the message's final counts (from its message_delta)
_STREAM_EVENT = '{"type":"stream_event"'  # how Claude Code starts a partial-message line
LIMIT_SUBTYPES = {"error_max_turns", "error_max_budget_usd", "error_max_structured_output_retries"}
TOKEN_KEYS = ("input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")


class ClaudeAdapter(JsonLinesReader):
    name = "claude"

    def launch(self, ctx: AgentContext) -> LaunchSpec:
        argv = ["claude", "-p", "--output-format", "stream-json", "--verbose"]
        if ctx.model:
            argv += ["--model", ctx.model]
        if not ctx.allow_web:
            argv += ["--disallowedTools", "WebFetch", "WebSearch"]  # [agent] allow_web = true lets them in
        argv += ["--dangerously-skip-permissions", *ctx.extra_args]
        env = {
            "DISABLE_AUTOUPDATER": "1",
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
            "CLAUDE_CODE_INCLUDE_PARTIAL_MESSAGES": "1",  # message_delta: each message's final output count
        }
        if ctx.sandbox_uid == 0:
            env["IS_SANDBOX"] = "1"  # as root, Claude Code refuses --dangerously-skip-permissions without it
        # the prompt goes on stdin: variadic flags such as --allowedTools would swallow a trailing prompt argument
        spec = LaunchSpec(argv=argv, env=env, stdin_prompt=True, image_layer="claude")
        if ctx.network == "broker":
            # No network, no credential: the API is the host's broker, behind a unix socket; it adds the key.
            auth, _ = broker_credentials(ctx)
            env["ANTHROPIC_UNIX_SOCKET"] = f"{BROKER_MOUNT}/{BROKER_SOCKET}"
            env["ANTHROPIC_BASE_URL"] = "http://localhost"
            env["ANTHROPIC_API_KEY"] = "arl-broker-placeholder"
            if ctx.state_dir is not None:
                spec.mounts.append(Mount(slot_folder(ctx.state_dir, ctx.slot), BROKER_MOUNT))
            spec.network = "none"
            spec.auth = f"{auth}, held by the host's API broker (the sandbox gets a placeholder)"
            return spec
        if ctx.host_env.get("ANTHROPIC_BASE_URL"):
            env["ANTHROPIC_BASE_URL"] = ctx.host_env["ANTHROPIC_BASE_URL"]
        _add_credentials(ctx, spec)
        spec.network = ctx.network
        return spec

    def parse_line(self, line: str, acc: StreamAccount) -> list[Event]:
        head = line.lstrip()
        if head.startswith(_STREAM_EVENT) and '"message_start"' not in head and '"message_delta"' not in head:
            return []  # a content delta: most of a partial-message stream, and nothing in it counts
        return super().parse_line(line, acc)

    def events(self, obj: dict[str, Any], acc: StreamAccount) -> list[Event]:
        kind = obj.get("type")
        if kind == "system":
            return _system(obj, acc)
        if kind == "assistant":
            return _assistant(obj, acc)
        if kind == "user":
            return _user(obj)
        if kind == "result":
            return _result(obj, acc)
        if kind == "stream_event":
            return _stream_event(obj, acc)
        return []

    def final_end(self, final: dict[str, Any], acc: StreamAccount, exit_code: int | None) -> str:
        if final.get("subtype") in LIMIT_SUBTYPES or final.get("terminal_reason") in ("max_turns", "budget_exhausted"):
            return "limit"
        if final.get("terminal_reason") == "api_error" and _outage(final.get("api_error_status")):
            return "api_error"  # its own retries ran out on an overloaded or unreachable API: an outage
        if str(final.get("terminal_reason") or "").startswith("aborted"):
            return "killed"  # it printed a result because it was interrupted (SIGINT), not because it finished
        return "error" if acc.is_error else "done"

    def cost(self, acc: StreamAccount) -> float:
        if acc.reported_cost is not None:
            return acc.reported_cost
        return estimate(acc)


def _outage(status: Any) -> bool:
    """An API failure that waiting cures: no answer at all, rate limits, overload and server errors (not 401/400)."""
    return status is None or (isinstance(status, int) and (status in (408, 429) or status >= 500))


def estimate(acc: StreamAccount) -> float:
    """arl's own total: each API message's last-seen usage, priced as Claude Code prices it."""
    return sum(claude_cost(str(u.get("model") or acc.model), u) for u in acc.usage_by_message.values())


def _system(obj: dict[str, Any], acc: StreamAccount) -> list[Event]:
    subtype = obj.get("subtype")
    if subtype == "init":
        acc.model = str(obj.get("model") or acc.model)
        data = {k: obj.get(k) for k in ("model", "session_id", "claude_code_version", "cwd", "apiKeySource")}
        return [Event("started", f"Claude Code {obj.get('claude_code_version', '?')}, model {acc.model}", data)]
    if subtype == "api_retry":
        data = {k: obj.get(k) for k in ("attempt", "max_retries", "retry_delay_ms", "error_status", "error")}
        text = f"API retry {obj.get('attempt')}/{obj.get('max_retries')}: {obj.get('error_status')} {obj.get('error')}"
        return [Event("retry", text, data)]
    return []


def _assistant(obj: dict[str, Any], acc: StreamAccount) -> list[Event]:
    msg = obj.get("message")
    if not isinstance(msg, dict):
        return []
    events: list[Event] = []
    for block in msg.get("content") or []:
        if not isinstance(block, dict):
            continue
        if block.get("type") == "text" and str(block.get("text", "")).strip():
            events.append(Event("text", str(block["text"])))
        elif block.get("type") == "tool_use":
            name, tool_input = str(block.get("name", "?")), block.get("input")
            events.append(
                Event(
                    "tool_call",
                    tool_summary(name, tool_input),
                    {"id": block.get("id"), "name": name, "input": tool_input},
                )
            )
    events += _note_usage(acc, msg.get("id"), str(msg.get("model") or acc.model), msg.get("usage"), final=False)
    return events


def _note_usage(acc: StreamAccount, mid: Any, model: str, usage: Any, final: bool) -> list[Event]:
    """Record one message's usage: replaced, never added (every block line repeats it); a final count stays."""
    if not isinstance(usage, dict) or not isinstance(mid, str) or model == "<synthetic>":
        return []
    prev = acc.usage_by_message.get(mid)
    if prev is not None and prev.get(FINAL) and not final:
        return []  # the provisional copy of a message whose message_delta is already in
    entry = {**usage, "model": model, **({FINAL: True} if final else {})}
    if prev == entry:
        return []
    acc.usage_by_message[mid] = entry
    acc.tokens = {k: sum(as_int(u.get(k)) for u in acc.usage_by_message.values()) for k in TOKEN_KEYS}
    return [Event("usage", "", {"message_id": mid, "usage": usage, "final": final, "estimate_usd": estimate(acc)})]


def _stream_event(obj: dict[str, Any], acc: StreamAccount) -> list[Event]:
    """Partial-message lines: message_start (the provisional usage) and message_delta (the final one)."""
    event = obj.get("event")
    if not isinstance(event, dict):
        return []
    if event.get("type") == "message_start":
        msg = event.get("message")
        if isinstance(msg, dict):
            return _note_usage(acc, msg.get("id"), str(msg.get("model") or acc.model), msg.get("usage"), final=False)
    elif event.get("type") == "message_delta" and isinstance(event.get("usage"), dict):
        mid = obj.get("api_message_id")
        if not isinstance(mid, str):  # an older CLI without the field: messages stream one after another
            mid = next(reversed(acc.usage_by_message), None)
        prev = acc.usage_by_message.get(mid, {}) if isinstance(mid, str) else {}
        # the delta's usage holds the final output count, and on newer APIs the input side again: merge over start
        usage = {**prev, **{k: v for k, v in event["usage"].items() if v is not None}}
        usage.pop(FINAL, None)
        model = str(usage.pop("model", None) or acc.model)
        return _note_usage(acc, mid, model, usage, final=True)
    return []


def _user(obj: dict[str, Any]) -> list[Event]:
    msg = obj.get("message")
    content = msg.get("content") if isinstance(msg, dict) else None
    if not isinstance(content, list):
        return []
    return [
        Event(
            "tool_result",
            first_line(content_text(b.get("content"))),
            {"tool_use_id": b.get("tool_use_id"), "is_error": bool(b.get("is_error"))},
        )
        for b in content
        if isinstance(b, dict) and b.get("type") == "tool_result"
    ]


def _result(obj: dict[str, Any], acc: StreamAccount) -> list[Event]:
    acc.final = obj
    is_error = obj.get("is_error")
    acc.is_error = bool(is_error) if isinstance(is_error, bool) else obj.get("subtype") != "success"
    cost = obj.get("total_cost_usd")
    if isinstance(cost, (int, float)) and not isinstance(cost, bool) and math.isfinite(cost) and cost >= 0:
        acc.reported_cost = float(cost)
    usage = obj.get("usage")
    if isinstance(usage, dict):
        acc.tokens = {k: as_int(usage.get(k)) for k in TOKEN_KEYS}
    keys = ("subtype", "is_error", "num_turns", "total_cost_usd", "usage", "terminal_reason", "errors")
    text = first_line(obj.get("result") or obj.get("errors") or obj.get("subtype") or "")
    return [Event("final", text, {k: obj.get(k) for k in keys})]


# --- credentials -------------------------------------------------------------------------------------------------
