"""The host's own evaluation of a tree: checked out from git objects into a fresh host-owned folder, evaluated in a
fresh network-less container that mounts it read-only. What is verified is what gets committed, by construction."""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from arl.config.config import LabConfig
from arl.config.engine import engine_kind
from arl.errors import ArlError
from arl.evaluation import contained
from arl.evaluation.contained import Box
from arl.runstate import slots
from arl.runstate.runstate import RunState, image_of
from arl.sandbox import containers
from arl.sandbox.docker_run import container_name, verify_run
from arl.sandbox.workspace import discard_checkout, fresh_checkout
from arl.util import sh

_counter = itertools.count()


@dataclass(frozen=True)
class Verification:
    """The host's measurement of a tree: the score that counts (the mean of `scores` over the repeats)."""

    score: float
    scores: list[float]
    metrics: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    split: bool = True  # False: a single-phase backend, whose score the pipeline could have forged
    failures: tuple[str, ...] = ()  # the first samples that failed, "id: why"

    def failed_note(self) -> str:
        """What the agent should hear about its failed samples ("" when none failed)."""
        return f" (failed samples: {'; '.join(self.failures)})" if self.failures else ""

    @property
    def spread(self) -> float:
        return max(self.scores) - min(self.scores)


class VerificationFailed(ArlError):
    """The tree did not evaluate on the host (its backend failed, timed out or printed no result)."""


def _gpus(cfg: LabConfig, st: RunState, slot: int) -> str:
    """`--gpus` of the slot's verification: its own GPU here; in a SLURM job step, the GPUs the job was given."""
    if engine_kind(cfg.engine, st["settings"]) != "slurm":
        return slots.gpu_for(cfg, slot)
    from arl.sandbox.gpus import allocated_gpus, gpu_args

    flags = gpu_args(allocated_gpus(os.environ), cfg.engine.gpu_mode)
    return flags[1] if flags[:1] == ["--gpus"] else ""


def host_evaluate(cfg: LabConfig, st: RunState, data: Path, repeats: int, tree: str, slot: int = 0) -> Verification:
    """Evaluate `tree` as the host sees it, on the slot's GPU. Raises VerificationFailed with the reason."""
    pipeline = fresh_checkout(cfg, tree, "verify")
    box = Box(cfg, image_of(st), st["run"], _gpus(cfg, st, slot), cache=True)
    try:
        got = contained.evaluate(box, data, pipeline, repeats)
    except ArlError as e:
        raise VerificationFailed(
            str(e) if str(e).startswith(("evaluation", "verification")) else f"verification failed: {e}"
        ) from None
    finally:
        discard_checkout(pipeline)
    failed = [f"{s.get('sample_id')}: {s.get('error')}" for s in got.sample_results if s.get("error")]
    return Verification(got.score, got.scores, got.metrics, got.seconds, got.split, tuple(f[:300] for f in failed[:3]))


# Run in the sandbox's image, where the backend's own dependencies are: import the class and make one.
_CHECK = """import os, sys
from arl.config.config import find_lab, load
from arl.evaluation.child import BackendProblem, load_backend_class
cfg = load(find_lab())
try:
    load_backend_class(cfg.backend_module, cfg.backend_class)()
except BackendProblem as e:
    sys.exit(f"{e}")
except Exception as e:
    sys.exit(f"{cfg.backend_class}() failed: {type(e).__name__}: {e}")
"""


def check_backend(cfg: LabConfig, st: RunState, tree: str) -> str | None:
    """Why the lab's backend cannot be imported and instantiated in the sandbox, or None when it can."""
    pipeline = fresh_checkout(cfg, tree, "check")
    name = container_name(cfg, st["run"], os.getpid() * 1000 + next(_counter), role="verify")
    try:
        cmd = verify_run(
            cfg,
            image=image_of(st),
            name=name,
            run=st["run"],
            data=Path(st["settings"]["data"]),
            repeats=1,
            pipeline=pipeline,
            command=["python3", "-c", _CHECK],
        )
        code, out, err = sh.run(cmd, ok=None, timeout=cfg.eval_timeout + 60)
    except ArlError as e:
        containers.stop(name, grace=1)
        return str(e)
    finally:
        discard_checkout(pipeline)
    lines = (err or out).strip().splitlines()
    return None if code == 0 else (lines[-1] if lines else f"the backend check exited {code}")
