"""The pipeline's evaluation as `arl eval` and `arl diagnose` make it on the host: in this machine's processes, or,
once the lab holds code an agent wrote, in the lab's sandbox image the way verification does."""

from __future__ import annotations

import contextlib
from contextlib import AbstractContextManager
from pathlib import Path

from arl.config.config import LabConfig
from arl.config.context import in_sandbox
from arl.evaluation.evaluate import SINGLE_PHASE_WARNING, Evaluation, evaluate
from arl.util import sh


def service_around(cfg: LabConfig, data: Path | None = None) -> AbstractContextManager[None]:
    """The lab's host service around an evaluation of `data` (its ARL_DATA_DIR); most labs have none, and then
    its module is not imported."""
    if cfg.host_service is None:
        return contextlib.nullcontext()
    from arl.sandbox.service import host_service

    return host_service(cfg, data)


def measure(cfg: LabConfig, data: Path, samples: list[str], repeats: int, local: bool) -> Evaluation:
    """The pipeline's evaluation: in this machine's processes in the sandbox or with --local (and for a lab that has
    kept nothing an agent wrote), otherwise in the lab's sandbox image, the host's way, as verification does."""
    if in_sandbox() or local or not has_agent_keeps(cfg):
        with service_around(cfg, data):
            result = evaluate(cfg, data, samples=samples or None, repeats=repeats)
    else:
        from arl.evaluation import contained
        from arl.sandbox.images import ensure_lab_image

        sh.say("arl: the lab holds an agent's kept code: evaluating it in the sandbox image (--local: in this process)")
        box = contained.Box(cfg, ensure_lab_image(cfg, "command"), 0)
        with service_around(cfg, data):
            result = contained.evaluate(box, data, cfg.pipeline_dir, repeats, samples or None)
    if not result.split and not in_sandbox():
        sh.say("arl: warning: " + SINGLE_PHASE_WARNING.format(cls=cfg.backend_class))
    return result


def has_agent_keeps(cfg: LabConfig) -> bool:
    """Whether results.tsv records a keep: then the pipeline holds code an agent wrote."""
    try:
        data = cfg.results_file.read_bytes()
    except OSError:
        return False
    # a line whose fourth cell is `keep`, found by the C scans of bytes.find, not a split of every line
    pos = data.find(b"\tkeep")
    while pos >= 0:
        whole_cell = data[pos + 5 : pos + 6] in (b"\t", b"\n", b"\r", b"")
        if whole_cell and data.count(b"\t", data.rfind(b"\n", 0, pos) + 1, pos) == 2:
            return True
        pos = data.find(b"\tkeep", pos + 5)
    return False
