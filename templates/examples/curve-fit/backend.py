"""Backend of the curve-fit example: mean absolute error of the pipeline's predictions, per sample.

A split backend: arl runs each part in its own process (and, when the host verifies, in its own container), so the
pipeline never sees the answers (the y column) nor the code that scores it."""

from __future__ import annotations

import csv
import importlib.util
from pathlib import Path

from arl import SampleResult, SplitBackend


def read_points(path: Path) -> tuple[list[float], list[float]]:
    with open(path) as f:
        rows = [(float(r["x"]), float(r["y"])) for r in csv.DictReader(f)]
    return [x for x, _ in rows], [y for _, y in rows]


class CurveFitBackend(SplitBackend):
    failed_sample_score = 10.0  # a sample the pipeline fails on costs more than any honest error here

    # trusted: sees the data
    def samples(self, data_dir: Path) -> list[str]:
        return sorted(p.stem for p in data_dir.glob("*.csv"))

    def inputs(self, data_dir: Path, sample_id: str) -> dict:
        xs, _ = read_points(data_dir / f"{sample_id}.csv")
        return {"x": xs}  # the question only: never the answers

    # untrusted: sees the pipeline and the inputs
    def predict(self, pipeline_dir: Path, inputs: dict) -> list[float]:
        spec = importlib.util.spec_from_file_location("curve_model", pipeline_dir / "model.py")
        model = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(model)
        return [float(y) for y in model.predict(inputs["x"])]

    # trusted: sees the data and the outputs (as data), never the pipeline
    def score(self, data_dir: Path, sample_id: str, output: list[float]) -> SampleResult:
        _, ys = read_points(data_dir / f"{sample_id}.csv")
        if not isinstance(output, list) or len(output) != len(ys):
            raise ValueError(f"expected a list of {len(ys)} numbers")
        if not all(isinstance(p, (int, float)) and not isinstance(p, bool) for p in output):
            raise ValueError("expected numbers only")
        mae = sum(abs(p - y) for p, y in zip(output, ys)) / len(ys)
        return SampleResult(sample_id, mae, extra={"points": len(ys)})
