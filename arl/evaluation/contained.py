"""A pipeline evaluated in the sandbox image, the host's way: each part of the backend in its own fresh, network-less
container. prepare sees the data and writes the inputs; run sees the pipeline (read-only) and the inputs, never the
data; the host copies the outputs as data; score sees the data and that copy, never the pipeline. A single-phase
backend runs in one container with the pipeline and the data, as before (and can forge its score)."""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from arl.config.config import LabConfig
from arl.errors import ArlError
from arl.evaluation.evaluate import SINGLE_PHASE_WARNING, Evaluation, evaluation, max_output_bytes
from arl.evaluation.outputs import BadOutputs, copy_outputs
from arl.sandbox import containers
from arl.sandbox.docker_run import WORK, container_name, phase_run
from arl.sandbox.spec import Mount
from arl.util import sh

_counter = itertools.count()


class ContainedFailed(ArlError):
    """A part of the evaluation failed in its container (the backend raised, timed out, or printed no result)."""


@dataclass(frozen=True)
class Box:
    """Where the containers run: the lab, its sandbox image, the run they belong to, the slot's GPU."""

    cfg: LabConfig
    image: str
    run: int
    gpus: str | None = None
    cache: bool = False  # keep the prepared inputs of a data folder for the rest of the run (the loop's verifications)


def evaluate(box: Box, data: Path, pipeline: Path, repeats: int, samples: list[str] | None = None) -> Evaluation:
    t0 = time.monotonic()
    work = _workdir(box.cfg)
    try:
        kind, inputs = _prepared(box, data.resolve(), samples, work)
        if kind == "single":  # the pipeline and the data in one container, as the backend asks
            mounts = [Mount(pipeline.resolve(), f"{WORK}/pipeline"), Mount(data.resolve(), f"{WORK}/data")]
            name, cmd = _container(box, mounts, _eval_cmd("evaluate", repeats, samples), service=True)
            out = _ask(name, cmd, box.cfg.eval_timeout * repeats)
            return evaluation(out, time.monotonic() - t0, split=False)
        raw = work / "raw"
        raw.mkdir()
        mounts = [Mount(pipeline.resolve(), f"{WORK}/pipeline"), Mount(inputs, f"{WORK}/inputs"), _rw(raw, "outputs")]
        cmd = _eval_cmd("run", repeats, None, "--inputs", f"{WORK}/inputs", "--outputs", f"{WORK}/outputs")
        _ask(*_container(box, mounts, cmd, service=True, files=False), box.cfg.eval_timeout * repeats)
        try:
            copy_outputs(raw, work / "outputs", max_output_bytes(box.cfg))
        except BadOutputs as e:
            raise ContainedFailed(f"evaluation failed: {e}") from None
        mounts = [Mount(data.resolve(), f"{WORK}/data"), Mount(work / "outputs", f"{WORK}/outputs")]
        cmd = _eval_cmd("score", repeats, samples, "--outputs", f"{WORK}/outputs")
        out = _ask(*_container(box, mounts, cmd), box.cfg.eval_timeout)
        return evaluation(out, time.monotonic() - t0, split=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def planned(box: Box, data: Path, pipeline: Path, repeats: int) -> list[Any]:
    """The docker commands of a split backend's verification, with the host's folders as placeholders under .arl/
    (for `arl run --dry-run`): prepare (once per run and data folder), run, then score."""
    inputs, work = box.cfg.state_dir / "inputs" / "r<run>-<data>" / "inputs", box.cfg.state_dir / "eval" / "<id>"
    run_mounts = [Mount(pipeline, f"{WORK}/pipeline"), Mount(inputs, f"{WORK}/inputs"), _rw(work / "raw", "outputs")]
    return [
        _container(
            box,
            [Mount(data, f"{WORK}/data"), _rw(inputs, "inputs")],
            _eval_cmd("prepare", 1, None, "--inputs", f"{WORK}/inputs"),
        )[1],
        _container(
            box,
            run_mounts,
            _eval_cmd("run", repeats, None, "--inputs", f"{WORK}/inputs", "--outputs", f"{WORK}/outputs"),
            service=True,
            files=False,
        )[1],
        _container(
            box,
            [Mount(data, f"{WORK}/data"), Mount(work / "outputs", f"{WORK}/outputs")],
            _eval_cmd("score", repeats, None, "--outputs", f"{WORK}/outputs"),
        )[1],
    ]


def _prepared(box: Box, data: Path, samples: list[str] | None, work: Path) -> tuple[str, Path]:
    """("split" | "single", the inputs folder): the prepare container's answer, or the run's cached one."""
    if not box.cache:
        return _prepare(box, data, samples, work / "prepared")
    folder = _cache_dir(box, data, samples)
    import fcntl

    # verifications run side by side: the first prepares, the others wait for it and reuse what it wrote
    with open(folder.parent / f"{folder.name}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _prepare(box, data, samples, folder)


def _prepare(box: Box, data: Path, samples: list[str] | None, folder: Path) -> tuple[str, Path]:
    answer = folder / "prepared.json"
    if answer.is_file():
        got = json.loads(answer.read_text())
        return got["kind"], folder / "inputs"
    shutil.rmtree(folder, ignore_errors=True)
    (folder / "inputs").mkdir(parents=True, mode=0o700)
    mounts = [Mount(data, f"{WORK}/data"), _rw(folder / "inputs", "inputs")]
    cmd = _eval_cmd("prepare", 1, samples, "--inputs", f"{WORK}/inputs")
    out = _ask(*_container(box, mounts, cmd), box.cfg.eval_timeout)
    kind = "split" if out.get("kind") == "split" else "single"
    if kind == "single":
        sh.say("arl: warning: " + SINGLE_PHASE_WARNING.format(cls=box.cfg.backend_class))
    answer.write_text(json.dumps({"kind": kind, "samples": out.get("samples") or []}))
    return kind, folder / "inputs"


def _cache_dir(box: Box, data: Path, samples: list[str] | None) -> Path:
    base = box.cfg.state_dir / "inputs"
    key = hashlib.sha256(json.dumps([str(data), samples or []]).encode()).hexdigest()[:16]
    mine = f"r{box.run}-"
    if base.is_dir():  # another run's inputs are stale: the data or the backend may have changed since
        for old in base.iterdir():
            if not old.name.startswith(mine):
                shutil.rmtree(old, ignore_errors=True) if old.is_dir() else old.unlink(missing_ok=True)
    base.mkdir(parents=True, exist_ok=True, mode=0o700)
    return base / f"{mine}{key}"


def _workdir(cfg: LabConfig) -> Path:
    base = cfg.state_dir / "eval"
    base.mkdir(parents=True, exist_ok=True, mode=0o700)
    work = base / f"{os.getpid()}-{next(_counter)}-{time.time_ns()}"
    work.mkdir(mode=0o700)
    return work


def _rw(host: Path, name: str) -> Mount:
    return Mount(host.resolve(), f"{WORK}/{name}", read_only=False)


def _name(box: Box) -> str:
    return container_name(box.cfg, box.run, os.getpid() * 1000 + next(_counter), role="verify")


def _container(
    box: Box, mounts: list[Mount], command: list[str], service: bool = False, files: bool = True
) -> tuple[str, Any]:
    """`service`: the host service is reachable (where pipeline code runs); `files`: `[backend] files` are mounted
    (never where a split backend's pipeline runs: they may be the scorer's references)."""
    name = _name(box)
    cmd = phase_run(
        box.cfg,
        image=box.image,
        name=name,
        run=box.run,
        mounts=mounts,
        command=command,
        gpus=box.gpus,
        service=service,
        lab_files=files,
    )
    return name, cmd


def _eval_cmd(phase: str, repeats: int, samples: list[str] | None, *more: str) -> list[str]:
    cmd = ["arl", "eval", "--phase", phase, "--json", "--repeats", str(repeats)]
    for s in samples or []:
        cmd += ["--sample", s]
    return [*cmd, *more]


def _ask(name: str, cmd: Any, limit: float) -> dict[str, Any]:
    """Run one part's container; its answer (the evaluation child's JSON), or ContainedFailed with the reason."""
    try:
        # arl eval inside enforces eval_timeout; this outer limit also covers the container's start-up.
        code, out, err = sh.run(cmd, ok=None, timeout=limit + 60)
    except ArlError as e:
        containers.stop(name, grace=1)
        raise ContainedFailed(f"evaluation failed: {e}") from None
    try:
        obj = parse_eval_json(out)
    except ArlError:
        tail = (err or out).strip().splitlines()
        raise ContainedFailed(f"evaluation failed (exit {code}): {tail[-1] if tail else 'no output'}") from None
    if "error" in obj or code != 0:
        raise ContainedFailed(str(obj.get("error", f"evaluation exited {code}")))
    return obj


def parse_eval_json(out: str) -> dict[str, Any]:
    for line in reversed(out.strip().splitlines()):
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        if isinstance(obj, dict):
            return obj
    raise ArlError(f"no JSON from the evaluation: {out.strip()[-200:]!r}")
