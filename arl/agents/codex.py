"""The `codex` adapter: OpenAI's Codex CLI in `codex exec --json` mode.

The event format followed (codex-rs/exec/src/exec_events.rs and the exec docs of openai/codex): JSON lines with a
`type` of thread.started, turn.started, item.started / item.updated / item.completed (an `item` whose own `type` is
agent_message, reasoning, command_execution, file_change, mcp_tool_call, web_search, todo_list or error; early
versions said `item_type` and assistant_message), turn.completed with usage {input_tokens, cached_input_tokens,
output_tokens}, turn.failed with error.message, and error (fatal, or "Reconnecting... n/m" while it retries).
turn.completed's usage is the thread's running total (exec's usage_from_last_total), so it is kept, not added.

Codex reports tokens, not dollars: arl prices them (pricing.py) for the model, which the launch line prints as the
stream's first line (an `arl.model` event) so that a saved transcript can be priced again on its own."""

from __future__ import annotations

import json
import re
from typing import Any

from arl.agents.base import AgentContext, Event, LaunchSpec, Mount, StreamAccount
from arl.agents.pricing import openai_cost
from arl.agents.stream import JsonLinesReader, as_int, first_line
from arl.broker.process import CODEX_PORT, slot_folder
from arl.broker.process import MOUNT as BROKER_MOUNT
from arl.broker.process import SOCKET as BROKER_SOCKET
from arl.errors import ArlError

PROMPT_FILE = "/workspace/control/prompt.md"
USAGE_KEYS = ("input_tokens", "cached_input_tokens", "output_tokens")
_RETRYING = re.compile(r"reconnecting|retrying", re.I)
_LIMIT = re.compile(r"usage limit|quota|rate limit|insufficient_quota|context window", re.I)
# The prompt is read from the control folder at start: it is long, and docker's command line (which arl prints)
# should not carry it. stdin is /dev/null, or codex exec would wait for more prompt on a pipe that never closes.
_SHELL = 'printf "%s\\n" "$ARL_MODEL_LINE"; exec "$@" "$(cat ' + PROMPT_FILE + ')" </dev/null'
# With the broker, codex's base URL is a port on the container's own loopback, forwarded to the broker's socket
# (codex speaks TCP only); the container has no other network.
_READY = "/tmp/.arl-broker-ready"
_FORWARD = (
    f"python3 -m arl.broker.forward tcp:127.0.0.1:{CODEX_PORT} unix:{BROKER_MOUNT}/{BROKER_SOCKET} {_READY} & "
    f"while [ ! -e {_READY} ]; do sleep 0.01; done; "
)
KEY_VARS = ("CODEX_API_KEY", "OPENAI_API_KEY")
NO_KEY = "no credentials for Codex: set CODEX_API_KEY (an OpenAI API key) in the environment"


def host_key(ctx: AgentContext) -> str:
    """The variable holding the host's OpenAI key (the broker reads it from its own environment)."""
    for var in KEY_VARS:
        if ctx.host_env.get(var):
            return var
    raise ArlError(NO_KEY)


class CodexAdapter(JsonLinesReader):
    name = "codex"

    def launch(self, ctx: AgentContext) -> LaunchSpec:
        var = host_key(ctx)
        codex = ["codex", "exec", "--json", "--ephemeral", "--skip-git-repo-check"]
        if ctx.model:
            codex += ["-m", ctx.model]
        codex += ["--dangerously-bypass-approvals-and-sandbox", "-C", "/workspace/pipeline"]
        if not ctx.allow_web:  # else codex (0.163) sends the provider's web_search tool, which the broker refuses
            codex += ["-c", 'web_search="disabled"']
        if ctx.network == "broker":  # codex 0.163 reads its base URL from its config only, not OPENAI_BASE_URL
            codex += ["-c", f'openai_base_url="http://127.0.0.1:{CODEX_PORT}/v1"']
        codex += ctx.extra_args
        env = {"ARL_MODEL_LINE": json.dumps({"type": "arl.model", "model": ctx.model})}
        spec = LaunchSpec(argv=["sh", "-c", _SHELL, "codex", *codex], env=env, image_layer="codex")
        if ctx.network == "broker":
            # No network, no key: codex talks to its own loopback, forwarded to the host's broker, which adds the key.
            env["CODEX_API_KEY"] = "arl-broker-placeholder"
            env["OPENAI_BASE_URL"] = f"http://127.0.0.1:{CODEX_PORT}/v1"
            spec.argv = ["sh", "-c", _FORWARD + _SHELL, "codex", *codex]
            if ctx.state_dir is not None:
                spec.mounts.append(Mount(slot_folder(ctx.state_dir, ctx.slot), BROKER_MOUNT))
            spec.network = "none"
            spec.auth = f"{var} (environment), held by the host's API broker (the sandbox gets a placeholder)"
            return spec
        env["CODEX_API_KEY"] = ctx.host_env[var]
        if ctx.host_env.get("OPENAI_BASE_URL"):
            env["OPENAI_BASE_URL"] = ctx.host_env["OPENAI_BASE_URL"]
        spec.auth, spec.secrets, spec.network = f"{var} (environment)", ["CODEX_API_KEY"], ctx.network
        return spec

    def events(self, obj: dict[str, Any], acc: StreamAccount) -> list[Event]:
        kind = str(obj.get("type", ""))
        if kind == "arl.model":
            acc.model = str(obj.get("model") or acc.model)
            return []
        if kind in ("thread.started", "thread.resumed"):
            return [Event("started", f"Codex thread {obj.get('thread_id', '?')}", {"thread_id": obj.get("thread_id")})]
        if kind.startswith("item.") and isinstance(obj.get("item"), dict):
            return _item(kind, obj["item"])
        if kind == "turn.completed":
            return _turn_completed(obj, acc)
        if kind == "turn.failed":
            return _turn_failed(obj, acc)
        if kind != "error":
            return []
        message = str(obj.get("message", ""))
        if _RETRYING.search(message):
            return [Event("retry", first_line(message), {"message": message})]
        acc.is_error = True
        return [Event("text", f"error: {first_line(message)}", {"error": message})]

    def final_end(self, final: dict[str, Any], acc: StreamAccount, exit_code: int | None) -> str:
        if final.get("type") == "turn.failed":
            return "limit" if _LIMIT.search(_error_message(final)) else "error"
        return "error" if acc.is_error and exit_code not in (None, 0) else "done"

    def cost(self, acc: StreamAccount) -> float:
        """The thread's tokens priced for acc.model (unknown or empty: the dearest tier, see pricing.py)."""
        return openai_cost(acc.model, acc.tokens)


def _item(kind: str, item: dict[str, Any]) -> list[Event]:
    itype = item.get("type") or item.get("item_type")
    done = kind == "item.completed"
    if itype in ("agent_message", "assistant_message"):
        return [Event("text", str(item.get("text", "")))] if done and item.get("text") else []
    if itype == "command_execution":
        if kind == "item.started":
            return [
                Event(
                    "tool_call",
                    f"shell: {first_line(item.get('command', ''))}",
                    {"id": item.get("id"), "name": "shell"},
                )
            ]
        if done:
            data = {
                "id": item.get("id"),
                "exit_code": item.get("exit_code"),
                "status": item.get("status"),
                "is_error": item.get("status") != "completed",
            }
            return [Event("tool_result", first_line(item.get("aggregated_output", "")), data)]
    if itype == "file_change" and done:  # reported once, after the patch is applied
        paths = ", ".join(str(c.get("path")) for c in item.get("changes") or [] if isinstance(c, dict))
        return [
            Event(
                "tool_call",
                f"edit: {first_line(paths)}",
                {"id": item.get("id"), "name": "apply_patch", "status": item.get("status")},
            )
        ]
    if itype == "mcp_tool_call":
        name = f"{item.get('server')}.{item.get('tool')}"
        if kind == "item.started":
            return [Event("tool_call", name, {"id": item.get("id"), "name": name})]
        if done:
            return [
                Event(
                    "tool_result",
                    first_line(item.get("error") or item.get("status", "")),
                    {"id": item.get("id"), "is_error": item.get("status") != "completed"},
                )
            ]
    if itype == "web_search" and kind == "item.started":
        return [Event("tool_call", f"web_search: {first_line(item.get('query', ''))}", {"name": "web_search"})]
    if itype == "error" and done:
        return [Event("text", f"error: {first_line(item.get('message', ''))}", {"error": item.get("message")})]
    return []  # reasoning, todo_list, updates: not part of the short live view


def _turn_completed(obj: dict[str, Any], acc: StreamAccount) -> list[Event]:
    raw = obj.get("usage")
    usage: dict[str, Any] = raw if isinstance(raw, dict) else {}
    new = {k: as_int(usage.get(k)) for k in USAGE_KEYS}
    old = {k: acc.tokens.get(k, 0) for k in USAGE_KEYS}
    # a running total never shrinks; should a version report per turn instead, the smaller numbers are added
    acc.tokens = new if all(new[k] >= old[k] for k in USAGE_KEYS) else {k: old[k] + new[k] for k in USAGE_KEYS}
    acc.final = obj
    data = {"usage": dict(acc.tokens), "estimate_usd": openai_cost(acc.model, acc.tokens)}
    return [Event("usage", "", data), Event("final", "turn completed", {**data, "is_error": False})]


def _turn_failed(obj: dict[str, Any], acc: StreamAccount) -> list[Event]:
    acc.final = obj
    acc.is_error = True
    message = _error_message(obj)
    return [Event("final", first_line(message), {"is_error": True, "error": message})]


def _error_message(obj: dict[str, Any]) -> str:
    err = obj.get("error")
    return str(err.get("message", "")) if isinstance(err, dict) else str(err or obj.get("message", ""))
