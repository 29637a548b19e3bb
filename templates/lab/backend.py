"""This lab's evaluation backend: turns (pipeline, data) into one score. Edit it to fit your benchmark.

It is a split backend: arl runs each part in its own process, and when the host verifies a keep, in its own
container, so the pipeline never sees the answers nor the code that scores it (docs/backends.md).

As written it expects one folder per sample in the data folder, holding `input.json` (what the pipeline may see)
and `expected.json` (the answer, which it may not), and runs `python <pipeline>/main.py INPUTS OUTPUTS`: main.py
reads INPUTS/<sample>/input.json and writes OUTPUTS/<sample>/output.json, so a pipeline in any language works
behind a small main.py. A sample scores 0 when its output equals the expected answer, 1 otherwise: the score is
the error rate, lower is better (unless lab.toml says direction = "maximize").
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from arl import SplitBackend


class PipelineBackend(SplitBackend):
    failed_sample_score = 1.0  # a sample without a usable output counts as wrong

    # 1. trusted: sees the data; says what the pipeline may see of each sample
    def samples(self, data_dir: Path) -> list[str]:
        return sorted(p.name for p in data_dir.iterdir() if (p / "input.json").is_file())

    def write_inputs(self, data_dir: Path, sample_id: str, folder: Path) -> None:
        shutil.copy(data_dir / sample_id / "input.json", folder / "input.json")  # never expected.json

    # 2. untrusted: runs the pipeline on the inputs; never sees the data folder or this file's scoring
    def run(self, pipeline_dir: Path, inputs_dir: Path, outputs_dir: Path) -> None:
        main = pipeline_dir / "main.py"
        if not main.is_file():
            raise FileNotFoundError(f"{main} does not exist: write it, or edit backend.py to call your pipeline")
        cmd = [sys.executable, str(main), str(inputs_dir), str(outputs_dir)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"main.py exited with {proc.returncode}: {proc.stderr.strip()[-300:]}")

    # 3. trusted: sees the data and the outputs (parsed JSON, size-capped), never the pipeline
    def score(self, data_dir: Path, sample_id: str, output: object) -> float:
        expected = json.loads((data_dir / sample_id / "expected.json").read_text())
        return 0.0 if output == expected else 1.0
