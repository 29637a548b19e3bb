"""Backend of the curve-fit example: mean absolute error of the pipeline's predictions, per sample."""

from __future__ import annotations

import csv
import importlib.util
from pathlib import Path

from arl import EvalBackend, EvalResult, SampleResult


def load_model(pipeline_dir: Path):
    spec = importlib.util.spec_from_file_location("curve_model", pipeline_dir / "model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class CurveFitBackend(EvalBackend):
    def evaluate(self, pipeline_dir: Path, data_dir: Path, sample_ids: list[str] | None = None) -> EvalResult:
        model = load_model(pipeline_dir)
        samples = []
        for path in sorted(data_dir.glob("*.csv")):
            if sample_ids and path.stem not in sample_ids:
                continue
            with open(path) as f:
                rows = [(float(r["x"]), float(r["y"])) for r in csv.DictReader(f)]
            xs, ys = [x for x, _ in rows], [y for _, y in rows]
            try:
                pred = model.predict(xs)
                mae = sum(abs(p - y) for p, y in zip(pred, ys)) / len(ys)
                samples.append(SampleResult(path.stem, mae, extra={"points": len(ys)}))
            except Exception as e:  # one broken sample should not hide the others
                samples.append(SampleResult(path.stem, float("nan"), error=f"{type(e).__name__}: {e}"))
        ok = [s.score for s in samples if s.error is None]
        if not ok:
            raise RuntimeError("no sample could be evaluated")
        score = sum(ok) / len(ok) + 10.0 * (len(samples) - len(ok))
        return EvalResult(
            score=score,
            metrics={"worst_mae": max(ok), "best_mae": min(ok), "failed": len(samples) - len(ok)},
            sample_results=samples,
        )
