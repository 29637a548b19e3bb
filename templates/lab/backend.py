"""This lab's evaluation backend: turns (pipeline, data) into one score. Edit it to fit your benchmark.

As written, it runs `python <pipeline>/main.py <data_dir>` and reads the score from the last line the
program prints, so a pipeline in any language works behind a small main.py. Lower is better unless
lab.toml says direction = "maximize".
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from arl import EvalBackend, EvalResult


class PipelineBackend(EvalBackend):
    def evaluate(self, pipeline_dir: Path, data_dir: Path, sample_ids: list[str] | None = None) -> EvalResult:
        main = pipeline_dir / "main.py"
        if not main.is_file():
            raise FileNotFoundError(f"{main} does not exist: write it, or edit backend.py to call your pipeline")
        proc = subprocess.run([sys.executable, str(main), str(data_dir)], capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"main.py exited with {proc.returncode}: {proc.stderr.strip()[-300:]}")
        lines = proc.stdout.strip().splitlines()
        if not lines:
            raise RuntimeError("main.py printed nothing; its last line must be the score")
        return EvalResult(score=float(lines[-1]))
