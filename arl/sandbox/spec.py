"""What an agent's container is made of, as an adapter asks for it: the program, its environment, its extra mounts,
its network. The adapters (arl.agents) fill it in; the sandbox turns it into a `docker run` line."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Mount:
    host: Path
    container: str
    read_only: bool = True


@dataclass
class LaunchSpec:
    argv: list[str]  # the program and its arguments inside the container
    env: dict[str, str]  # exactly the variables the agent needs
    mounts: list[Mount] = field(default_factory=list)
    stdin_prompt: bool = False  # feed the prompt file (/workspace/control/prompt.md) on stdin
    auth: str = "none"  # which credential was found, for `arl run --dry-run`
    image_layer: str | None = None  # agent layer to build on arl-agent-base (e.g. "claude"), None = base
    secrets: list[str] = field(default_factory=list)  # names in env holding credentials: pass by name, never print
    # An agent that calls an LLM API needs the network; one that does not gets none (nothing to reach).
    network: str = "bridge"  # "bridge" | "none"
