"""Agent adapters by name (`[agent] kind`, `--agent`), or a dotted path to a user's own class."""

from __future__ import annotations

from importlib import import_module
from typing import Any

from arl.agents.base import AgentAdapter
from arl.errors import ArlError

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
