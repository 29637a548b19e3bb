"""The agent's notes file: kept by the host across relaunches, never committed, never seen by verification."""

from __future__ import annotations

from pathlib import Path

import pytest

from .conftest import arl, git
from .loophelpers import cleanup_containers, rows, set_toml

pytestmark = pytest.mark.docker

# Each session reads what the earlier ones wrote, adds a line saying how many it found, and dies.
AGENT = [
    "sh",
    "-c",
    "n=$(wc -l < /workspace/notes.md); "
    "echo session $n >> /workspace/notes.md; grep -q 'Keep what you learn' /workspace/control/prompt.md || exit 9; "
    "exit 3",
]


def test_notes_survive_relaunches_and_stay_out_of_git(example_lab: Path, base_image: str) -> None:
    set_toml(example_lab, "agent", "command", AGENT)
    git(example_lab, "commit", "-qam", "notes agent")
    try:
        proc = arl(
            "run", "--data", "data", "--agent", "command", "--max-iterations", "3", "--max-restarts", "5",
            "--plateau-threshold", "0", cwd=example_lab, check=False, timeout=300, env={"ARL_BASE_FROM": "debootstrap"},
        )  # fmt: skip
    finally:
        cleanup_containers(example_lab)
    # every session crashed on purpose (exit 3): a run of nothing but crashes exits 1
    assert proc.returncode == 1 and "all 3 experiments of run 1 crashed" in proc.stderr, proc.stderr[-2000:]
    # Three sessions, each saw the lines of the ones before it (and the prompt told them about the file).
    notes = (example_lab / ".arl" / "notes" / "0.md").read_text()
    assert notes == "session 0\nsession 1\nsession 2\n", notes
    assert [r["outcome"] for r in rows(example_lab)] == ["baseline", "crash", "crash", "crash"]
    # Never committed: no commit of any ref holds a notes file.
    listed = git(example_lab, "log", "--all", "--name-only", "--format=")
    assert "notes.md" not in listed and "0.md" not in listed
    # Verification mounts the checked-out tree, the data and the lab, never the notes.
    dry = arl("run", "--data", "data", "--agent", "command", "--dry-run", cwd=example_lab).stdout
    verify = [ln for ln in dry.splitlines() if "arl eval --phase" in ln]
    assert len(verify) == 4 and not any("notes.md" in ln or "/.arl/notes" in ln for ln in verify), verify
