"""The local engine: the slots' containers on this machine's Docker engine (the default)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from arl.config.config import LabConfig
from arl.runstate import slots
from arl.sandbox import containers
from arl.sandbox.containers import State


class Local:
    kind = "local"

    def __init__(self, cfg: LabConfig) -> None:
        self.cfg = cfg

    def start(
        self, cmd: Any, name: str, transcript: Path, env: dict[str, str], slot: int, run: int, time_left: float = 0.0
    ) -> int | None:
        return containers.run_attached(cmd, name, transcript, env=env)

    def state(self, name: str) -> State:
        return containers.state(name)

    def freeze(self, name: str) -> bool:
        return containers.pause(name)

    def thaw(self, name: str) -> None:
        containers.unpause(name)

    def remove(self, name: str, grace: float = 5.0, remove: bool = True) -> None:
        containers.stop(name, grace=grace, remove=remove)

    def stderr_tail(self, name: str, lines: int = 5) -> str:
        return containers.stderr_tail(name, lines)

    def gpus(self, slot: int) -> str:
        return slots.gpu_for(self.cfg, slot)

    def verification(self, name: str, argv: list[str]) -> list[str]:
        return argv

    def leftovers(self) -> list[str]:
        return containers.ours(str(self.cfg.root))

    def describe(self, name: str) -> str:
        return ""
