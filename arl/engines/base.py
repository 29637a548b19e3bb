"""The boundary between the loop and where a slot's agent runs. The loop asks an engine to start a slot's container,
freeze, thaw and remove it, tell its state, run a verification where the slot's resources are, and find leftovers;
it never asks docker or a scheduler itself. An engine is one module: `local` (this machine's Docker engine) and
`slurm` (each slot a SLURM job) are built; docs/engines.md says how Kubernetes or remote Docker hosts would be."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from arl.sandbox.containers import State


class Engine(Protocol):
    kind: str

    def start(
        self, cmd: Any, name: str, transcript: Path, env: dict[str, str], slot: int, run: int, time_left: float = 0.0
    ) -> int | None:
        """Start the slot's container from `cmd` (a `docker run` command value, attached), its stdout appended to
        `transcript`; `env` holds the secrets it is given; `time_left`: seconds the run has left (0: no limit).
        Returns the pid of a local process that ends with the container (None: none here)."""
        ...

    def state(self, name: str) -> State: ...

    def freeze(self, name: str) -> bool:
        """Pause every process of the container; False when it is not running."""
        ...

    def thaw(self, name: str) -> None: ...

    def remove(self, name: str, grace: float = 5.0, remove: bool = True) -> None:
        """SIGINT (agents save and exit), then harder; its container (and job) gone unless `remove` is False."""
        ...

    def stderr_tail(self, name: str, lines: int = 5) -> str: ...

    def gpus(self, slot: int) -> str:
        """`--gpus` for the slot's containers as arl builds them (empty: the engine adds what it was given)."""
        ...

    def verification(self, name: str, argv: list[str]) -> list[str]:
        """The command line that runs a verification process (`argv`) with the resources of the slot whose
        container is `name`."""
        ...

    def leftovers(self) -> list[str]:
        """Containers of this lab the engine still has (a run killed before its teardown): names for `remove`."""
        ...

    def describe(self, name: str) -> str:
        """Where the container is, for `arl status` (empty on this machine)."""
        ...
