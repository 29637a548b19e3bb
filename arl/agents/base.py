"""The agent adapter Protocol: the one swappable part of the loop, the types it speaks in, and the adapters by name
(`get_adapter`: `[agent] kind`, `--agent`, or a dotted path to a user's own class).

An adapter says how to start an agent in the sandbox (command, environment, extra mounts), how to read its
output stream into a few normalised events, how to classify its end, and what it cost."""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import import_module
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from arl.errors import ArlError
from arl.sandbox.spec import LaunchSpec, Mount

__all__ = ["AgentAdapter", "AgentContext", "Event", "LaunchSpec", "Mount", "StreamAccount", "get_adapter"]

EVENT_KINDS = ("started", "text", "tool_call", "tool_result", "usage", "retry", "final")
END_CLASSES = ("done", "error", "limit", "timeout", "killed", "api_error")


@dataclass
class Event:
    kind: str  # one of EVENT_KINDS
    text: str = ""
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class AgentContext:
    """What an adapter may use to build its launch: nothing else of the host reaches the sandbox."""

    lab_name: str
    model: str
    extra_args: list[str]
    prompt: str  # the full prompt: arl's protocol + the lab's AGENT.md + --prompt
    host_env: dict[str, str]  # the host environment, to look credentials up in (never copied wholesale)
    home: Path  # the host user's home, for credential files
    sandbox_uid: int
    command: list[str] = field(default_factory=list)  # [agent] command, for kind = "command"
    use_oauth_osx: bool = False
    seed: int | None = None
    state_dir: Path | None = None  # the lab's .arl/: where an adapter keeps what it mounts (agent config, credentials)
    network: str = "bridge"  # "broker": the API only, through the host's broker; "bridge": docker's network; "none"
    allow_web: bool = False  # [agent] allow_web: the agent's own web tools (fetching pages, searching)
    slot: int = 0  # which slot's agent: each has its own broker socket, so the broker's counts are per slot


@dataclass
class StreamAccount:
    """Running totals over one agent process's output stream."""

    events: int = 0
    reported_cost: float | None = None  # the agent's own total, from its final event
    usage_by_message: dict[str, dict[str, Any]] = field(default_factory=dict)  # message id -> last usage seen
    tokens: dict[str, int] = field(default_factory=dict)
    final: dict[str, Any] | None = None
    is_error: bool = False
    model: str = ""


@runtime_checkable
class AgentAdapter(Protocol):
    name: str

    def launch(self, ctx: AgentContext) -> LaunchSpec:
        """Command, environment and mounts; raises ArlError (one line) when credentials are missing."""
        ...

    def parse_line(self, line: str, acc: StreamAccount) -> list[Event]:
        """One line of the agent's stdout -> events; updates acc. Never raises on garbage."""
        ...

    def end_class(self, acc: StreamAccount, exit_code: int | None) -> str:
        """How the process ended: one of END_CLASSES (exit_code None = still running / killed)."""
        ...

    def cost(self, acc: StreamAccount) -> float:
        """USD for this process: the agent's own report when it made one, else arl's estimate."""
        ...


KNOWN = {
    "claude": "arl.agents.claude:ClaudeAdapter",
    "codex": "arl.agents.codex:CodexAdapter",
    "command": "arl.agents.command:CommandAdapter",
    "offline": "arl.agents.offline:OfflineAdapter",
}


def get_adapter(kind: str) -> AgentAdapter:
    """An adapter instance: a known kind, or `pkg.mod:Class` / `pkg.mod.Class` (imported only when asked for)."""
    target = KNOWN.get(kind, kind)
    if ":" in target:
        module_name, _, attr = target.partition(":")
    else:
        module_name, _, attr = target.rpartition(".")
    if not module_name or not attr:
        raise ArlError(
            f"unknown agent {kind!r}: use one of {', '.join(KNOWN)}, or a class path such as mypkg.mod:MyAgent"
        )
    try:
        cls: Any = getattr(import_module(module_name), attr)
    except ImportError as e:
        raise ArlError(f"cannot import the agent adapter {target!r}: {e}")
    except AttributeError:
        raise ArlError(f"the module {module_name!r} has no class {attr!r} (agent {kind!r})")
    try:
        adapter = cls()
    except Exception as e:
        raise ArlError(f"cannot create the agent adapter {target!r}: {type(e).__name__}: {e}")
    if not isinstance(adapter, AgentAdapter):
        raise ArlError(f"{target!r} is not an agent adapter: it needs name, launch, parse_line, end_class and cost")
    return adapter
