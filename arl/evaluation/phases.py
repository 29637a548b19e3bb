"""The three phases of a SplitBackend, each run in its own evaluation process (arl.evaluation.child):

prepare (trusted: the data in, the inputs folder out), run (untrusted: the pipeline and the inputs in, the outputs
folder out) and score (trusted: the data and the copied outputs in, the EvalResult out). No phase but `run` ever
imports or runs pipeline code, and `run` never gets the data folder."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from arl.evaluation.api import ERROR_FILE, OUTPUT_FILE, SampleResult, SplitBackend
from arl.evaluation.outputs import read_json

_SAFE_ID = re.compile(r"[A-Za-z0-9_.@+=-]{1,200}")


class PhaseProblem(Exception):
    """The backend broke the split protocol (a bad sample id, a missing output...)."""


def repeat_dir(outputs: Path, k: int) -> Path:
    return outputs / f"rep-{k}"


def sample_ids(backend: SplitBackend, data: Path, wanted: list[str] | None) -> list[str]:
    """The backend's samples (checked: each id is also a folder name), filtered by `--sample`."""
    ids = [str(s) for s in backend.samples(data)]
    for s in ids:
        if not _SAFE_ID.fullmatch(s) or s in (".", ".."):
            raise PhaseProblem(f"sample id {s!r} cannot be a folder name (letters, digits, _.@+=- only)")
    if len(set(ids)) != len(ids):
        raise PhaseProblem("samples() returned the same id twice")
    if wanted:
        missing = [w for w in wanted if w not in ids]
        if missing:
            raise PhaseProblem(f"no sample {missing[0]!r} in the data folder")
        ids = [s for s in ids if s in wanted]
    return ids


def prepare(backend: SplitBackend, data: Path, inputs: Path, wanted: list[str] | None) -> list[str]:
    ids = sample_ids(backend, data, wanted)
    inputs.mkdir(parents=True, exist_ok=True)
    for s in ids:
        folder = inputs / s
        folder.mkdir()
        backend.write_inputs(data, s, folder)
    return ids


def run(backend: SplitBackend, pipeline: Path, inputs: Path, outputs: Path, repeats: int) -> None:
    samples = sorted(p.name for p in inputs.iterdir() if p.is_dir())
    for k in range(repeats):
        out = repeat_dir(outputs, k)
        for s in samples:
            (out / s).mkdir(parents=True)
        backend.run(pipeline, inputs, out)


def score(backend: SplitBackend, data: Path, outputs: Path, k: int, wanted: list[str] | None, cap: int) -> Any:
    results = [_score_one(backend, data, s, repeat_dir(outputs, k) / s, cap) for s in sample_ids(backend, data, wanted)]
    return backend.summarize(results)


def _score_one(backend: SplitBackend, data: Path, sample: str, folder: Path, cap: int) -> SampleResult:
    if not folder.is_dir():
        return SampleResult(sample, float("nan"), error="the pipeline wrote no output folder for it")
    out, err = folder / OUTPUT_FILE, folder / ERROR_FILE
    value: Any = None
    if out.is_file():
        try:
            value = read_json(out, cap)
        except (ValueError, RecursionError, UnicodeDecodeError) as e:
            return SampleResult(sample, float("nan"), error=f"{OUTPUT_FILE} is not valid JSON: {e}"[:500])
    elif err.is_file():
        return SampleResult(sample, float("nan"), error=_head(err))
    try:
        return backend.score_sample(data, sample, value, folder)
    except Exception as e:  # a hostile output (wrong type, wrong length) fails its sample, not the scorer
        return SampleResult(sample, float("nan"), error=f"scoring raised {type(e).__name__}: {e}"[:500])


def _head(path: Path) -> str:
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    with open(fd, "rb") as f:
        text = f.read(500).decode("utf-8", "replace").strip()
    return "pipeline: " + (text or "failed")
