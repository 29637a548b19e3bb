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

Credentials (first found wins): ANTHROPIC_API_KEY, CLAUDE_CODE_OAUTH_TOKEN, the credentials file, the macOS keychain.
The credentials file is mounted read-write by itself (Claude Code rewrites it in place when it refreshes the token,
and a refresh rotates the refresh token: a copy would log the host's own Claude Code out). It sits inside a config
folder of the lab's .arl/ mounted as CLAUDE_CONFIG_DIR, outside $HOME: docker creates the parents of a mount point
as root, which would leave the tmpfs $HOME unwritable for the sandbox user."""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from ..errors import ArlError
from .base import AgentContext, Event, LaunchSpec, Mount, StreamAccount
from .pricing import claude_cost
from .stream import as_int, content_text, end_without_final, first_line, json_object, tool_summary

CONFIG_DIR = "/tmp/claude-config"  # CLAUDE_CONFIG_DIR in the sandbox (/tmp is a tmpfs there)
KEYCHAIN_ITEM = "Claude Code-credentials"
FINAL = "arl_final"  # marks a usage entry that holds the message's final counts (from its message_delta)
_STREAM_EVENT = '{"type":"stream_event"'  # how Claude Code starts a partial-message line
LIMIT_SUBTYPES = {"error_max_turns", "error_max_budget_usd", "error_max_structured_output_retries"}
TOKEN_KEYS = ("input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
NO_CREDENTIALS = (
    "no credentials for Claude Code: set ANTHROPIC_API_KEY, or CLAUDE_CODE_OAUTH_TOKEN (from `claude setup-token`), "
    "or log in with `claude` so that ~/.claude/.credentials.json exists, or on macOS pass --use-oauth-osx"
)


class ClaudeAdapter:
    name = "claude"

    def launch(self, ctx: AgentContext) -> LaunchSpec:
        argv = ["claude", "-p", "--output-format", "stream-json", "--verbose"]
        if ctx.model:
            argv += ["--model", ctx.model]
        argv += ["--dangerously-skip-permissions", *ctx.extra_args]
        env = {
            "DISABLE_AUTOUPDATER": "1",
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
            "CLAUDE_CODE_INCLUDE_PARTIAL_MESSAGES": "1",  # message_delta: each message's final output count
        }
        if ctx.sandbox_uid == 0:
            env["IS_SANDBOX"] = "1"  # as root, Claude Code refuses --dangerously-skip-permissions without it
        if ctx.host_env.get("ANTHROPIC_BASE_URL"):
            env["ANTHROPIC_BASE_URL"] = ctx.host_env["ANTHROPIC_BASE_URL"]
        # the prompt goes on stdin: variadic flags such as --allowedTools would swallow a trailing prompt argument
        spec = LaunchSpec(argv=argv, env=env, stdin_prompt=True, image_layer="claude")
        _add_credentials(ctx, spec)
        return spec

    def parse_line(self, line: str, acc: StreamAccount) -> list[Event]:
        head = line.lstrip()
        if head.startswith(_STREAM_EVENT) and '"message_start"' not in head and '"message_delta"' not in head:
            return []  # a content delta: most of a partial-message stream, and nothing in it counts
        obj = json_object(line)
        if obj is None:
            return []  # a terminal, wrapper or runtime printed something that is not ours: ignore it
        kind = obj.get("type")
        if kind == "system":
            events = _system(obj, acc)
        elif kind == "assistant":
            events = _assistant(obj, acc)
        elif kind == "user":
            events = _user(obj)
        elif kind == "result":
            events = _result(obj, acc)
        elif kind == "stream_event":
            events = _stream_event(obj, acc)
        else:
            events = []
        acc.events += len(events)
        return events

    def end_class(self, acc: StreamAccount, exit_code: int | None) -> str:
        final = acc.final
        if final is None:
            return end_without_final(exit_code)
        if final.get("subtype") in LIMIT_SUBTYPES or final.get("terminal_reason") in ("max_turns", "budget_exhausted"):
            return "limit"
        if str(final.get("terminal_reason") or "").startswith("aborted"):
            return "killed"  # it printed a result because it was interrupted (SIGINT), not because it finished
        return "error" if acc.is_error else "done"

    def cost(self, acc: StreamAccount) -> float:
        if acc.reported_cost is not None:
            return acc.reported_cost
        return estimate(acc)


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


def _add_credentials(ctx: AgentContext, spec: LaunchSpec) -> None:
    if ctx.use_oauth_osx and sys.platform != "darwin":
        raise ArlError(
            f"--use-oauth-osx reads the macOS keychain, and this host is {sys.platform}: drop it and set "
            "ANTHROPIC_API_KEY or CLAUDE_CODE_OAUTH_TOKEN, or log in with `claude` (~/.claude/.credentials.json)"
        )
    for var in ("ANTHROPIC_API_KEY", "CLAUDE_CODE_OAUTH_TOKEN"):
        if ctx.host_env.get(var):
            spec.env[var] = ctx.host_env[var]
            spec.secrets.append(var)
            spec.auth = f"{var} (environment)"
            return
    creds = host_credentials(ctx)
    if creds.is_file():
        folder = config_folder(ctx)
        placeholder = folder / ".credentials.json"  # the mount point: ours, or docker would create it as root
        if not placeholder.exists():
            _write_private(placeholder, "")
        spec.mounts += [
            Mount(folder, CONFIG_DIR, read_only=False),
            Mount(creds, f"{CONFIG_DIR}/.credentials.json", read_only=False),
        ]
        spec.env["CLAUDE_CONFIG_DIR"] = CONFIG_DIR
        spec.auth = f"credentials file {creds} (mounted read-write: token refreshes reach it)"
        return
    if ctx.use_oauth_osx:
        folder = config_folder(ctx)
        copy = folder / ".credentials.json"
        _store_keychain_copy(read_keychain(), copy)
        spec.mounts.append(Mount(folder, CONFIG_DIR, read_only=False))
        spec.env["CLAUDE_CONFIG_DIR"] = CONFIG_DIR
        spec.auth = f"macOS keychain item {KEYCHAIN_ITEM!r} (copied to {copy})"
        return
    raise ArlError(NO_CREDENTIALS)


def host_credentials(ctx: AgentContext) -> Path:
    """Where the host's Claude Code keeps its login: $CLAUDE_CONFIG_DIR or ~/.claude, then .credentials.json."""
    folder = ctx.host_env.get("CLAUDE_CONFIG_DIR")
    return (Path(folder).expanduser() if folder else ctx.home / ".claude") / ".credentials.json"


def config_folder(ctx: AgentContext) -> Path:
    """The sandbox's CLAUDE_CONFIG_DIR on the host: in the lab's .arl/, so it is the user's and survives restarts."""
    slug = re.sub(r"[^a-z0-9_.-]+", "-", ctx.lab_name.lower()).strip("-.") or "lab"
    folder = ctx.state_dir / "claude" if ctx.state_dir else ctx.home / ".cache" / "arl" / "claude-config" / slug
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    return folder


def read_keychain() -> str:
    """The macOS keychain's Claude Code login (JSON with claudeAiOauth), through the `security` tool."""
    cmd = ["security", "find-generic-password", "-s", KEYCHAIN_ITEM, "-w"]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise ArlError(f"cannot run `{' '.join(cmd)}`: {e}")
    if proc.returncode != 0 or not proc.stdout.strip():
        raise ArlError(
            f"the macOS keychain has no item {KEYCHAIN_ITEM!r} (security exited {proc.returncode}): "
            "log in with `claude` on this Mac first"
        )
    return proc.stdout.strip()


def _expiry(text: str) -> float:
    try:
        value = json.loads(text).get("claudeAiOauth", {}).get("expiresAt", 0)
    except (ValueError, AttributeError):
        return 0.0
    return float(value) if isinstance(value, (int, float)) else 0.0


def _store_keychain_copy(secret: str, copy: Path) -> None:
    if not isinstance(json_object(secret), dict):
        raise ArlError(f"the keychain item {KEYCHAIN_ITEM!r} is not the JSON Claude Code writes; log in with `claude`")
    # the sandbox may have refreshed the copy since: a newer token there must not be replaced by an older one
    if copy.is_file() and _expiry(copy.read_text()) > _expiry(secret):
        return
    _write_private(copy, secret)


def _write_private(path: Path, text: str) -> None:
    """Write a 0600 file atomically (a credential must never be world-readable, even for a moment)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)
