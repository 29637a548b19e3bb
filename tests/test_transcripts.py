"""The agent's stream is captured as it is written: the engine's log rotation cannot lose or misalign it."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from arl.sandbox import containers
from arl.util import sh

pytestmark = pytest.mark.docker

LINES = 3000


def test_a_stream_larger_than_the_rotation_size_is_complete_on_the_host(base_image: str, tmp_path: Path) -> None:
    name = f"arl-test-rotation-{tmp_path.name[-12:]}".lower()
    # A daemon with max-size keeps only the newest ~4 kB of this container's log; the stream is ~100 kB.
    # One JSON line per print, numbered: {"line": i, "pad": "xxxx..."}
    script = f"import json, sys\nfor i in range({LINES}):\n"
    script += "    print(json.dumps({'line': i, 'pad': 'x' * 16}), flush=True)\n"
    cmd = sh.docker()["run", "--sig-proxy=false", "--name", name, "--log-opt", "max-size=2k", "--log-opt", "max-file=2",
                      base_image, "python3", "-c", script]  # fmt: skip
    dest = tmp_path / "transcript.jsonl"
    try:
        pid = containers.run_attached(cmd, name, dest)  # as the loop starts every agent
        subprocess.run(["docker", "wait", name], check=True, capture_output=True, timeout=120)
        assert containers.follower_done(pid, 30), "the docker client did not end with its container"
        engine_kept = subprocess.run(["docker", "logs", name], capture_output=True, text=True).stdout.splitlines()
    finally:
        subprocess.run(["docker", "rm", "--force", name], capture_output=True)
    lines = dest.read_text().splitlines()
    # The engine rotated most of it away; the host's copy has every line, once, in order.
    assert len(engine_kept) < LINES / 2, len(engine_kept)
    assert [int(ln.split('"line": ')[1].split(",")[0]) for ln in lines] == list(range(LINES))
