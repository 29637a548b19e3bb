"""The GPUs a SLURM job was given, as flags of the containers it starts."""

from __future__ import annotations

import os


def allocated_gpus(env: dict[str, str] | os._Environ[str]) -> str:
    """The GPU indices the scheduler gave this job (SLURM_JOB_GPUS names the node's devices; CUDA_VISIBLE_DEVICES
    may be renumbered when devices are constrained by cgroup)."""
    for var in ("SLURM_JOB_GPUS", "SLURM_STEP_GPUS", "CUDA_VISIBLE_DEVICES"):
        if env.get(var):
            return env[var]
    return ""


def gpu_args(gpus: str, mode: str) -> list[str]:
    if not gpus:
        return []
    if mode == "env":
        return ["--env", f"CUDA_VISIBLE_DEVICES={gpus}", "--env", f"NVIDIA_VISIBLE_DEVICES={gpus}"]
    return ["--gpus", f'"device={gpus}"' if "," in gpus else f"device={gpus}"]
