"""Before any slot of a SLURM run is submitted: a tiny probe job on the slots' partition, which must see the lab's
folder and the image and run the container engine; else it says exactly what is missing."""

from __future__ import annotations

from arl.config.engine import time_limit_minutes
from arl.engines.slurm import Slurm
from arl.errors import ArlError
from arl.sandbox.docker_run import slug
from arl.util import sh


def probe(engine: Slurm, image: str, iteration_timeout: float) -> str:
    """Before any slot is submitted: a tiny job on the slots' partition must see the lab's folder and the image
    and run the container engine; else say exactly what is missing."""
    minutes = time_limit_minutes(engine.s.time_limit) if engine.s.time_limit else None
    if minutes is not None and iteration_timeout and minutes * 60 < iteration_timeout:
        raise ArlError(
            f"[engine] time_limit {engine.s.time_limit} is shorter than one experiment (iteration_timeout "
            f"{iteration_timeout:g} s): a job would end before its agent could finish"
        )
    check = (
        f"test -r {engine.cfg.path} || echo 'the lab folder {engine.cfg.root} is not shared with the node'; "
        f"{engine.s.runtime} image inspect --format . {image} >/dev/null 2>&1 || "
        f"echo 'the image {image} is not on the node ({engine.s.runtime} load it there, or use a shared registry)'"
    )
    probe = sh.tool("srun")[
        [
            "--ntasks=1",
            "--quiet",
            f"--job-name=arl-{slug(engine.cfg.name)}-probe",
            "--time=5",
            *engine.resources(),
            "sh",
            "-c",
            check,
        ]
    ]
    code, out, err = sh.run(probe, ok=None, timeout=600)
    if code != 0:
        detail = (err.strip() or out.strip()).splitlines()
        hint = " (is munged running on this host and the nodes?)" if "munge" in err.lower() else ""
        raise ArlError(f"the probe job failed{hint}: {detail[-1] if detail else f'exit {code}'}")
    if out.strip():
        raise ArlError(f"the probe job on the slots' partition says: {out.strip().splitlines()[0]}")
    return "probe job: the node sees the lab's folder and the image"
