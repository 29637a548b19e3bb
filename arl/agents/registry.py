"""Agent adapters by name (`[agent] kind`, `--agent`), or a dotted path to a user's own class."""

from __future__ import annotations

from importlib import import_module
from typing import Any

from ..errors import ArlError
from .base import AgentAdapter

KNOWN = {
    "claude": "arl.agents.claude:ClaudeAdapter",
    "codex": "arl.agents.codex:CodexAdapter",
    "command": "arl.agents.command:CommandAdapter",
    "offline": "arl.agents.offline:OfflineAdapter",
}


def get_adapter(kind: str) -> AgentAdapter:
    target = KNOWN.get(kind, kind)
    if ":" in target:
        module_name, _, attr = target.partition(":")
    elif "." in target:
        module_name, _, attr = target.rpartition(".")
    else:
        raise ArlError(f"unknown agent {kind!r}; known: {', '.join(KNOWN)}, or a dotted path module:Class")
    try:
        cls: Any = getattr(import_module(module_name), attr)
    except (ImportError, AttributeError) as e:
        raise ArlError(f"cannot load the agent adapter {target!r}: {e}")
    return cls()
