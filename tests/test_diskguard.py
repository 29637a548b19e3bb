"""The periodic disk check's parts, without Docker: the workspace measure (allocated blocks, a walk that stops at
the limit, locked folders opened) and the notes cut (in place, ending with a line that tells the agent)."""

from __future__ import annotations

import os
from pathlib import Path

from arl.config.config import LabConfig, load
from arl.loop.diskguard import cap_notes, over_limit
from arl.loop.launching import notes_file


def lab_cfg(example_lab: Path, **changes: float) -> LabConfig:
    return load(example_lab / "lab.toml")._replace(**changes)


def test_the_workspace_measure(example_lab: Path, tmp_path: Path) -> None:
    cfg = lab_cfg(example_lab, max_workspace_mb=2, max_files=10)
    ws = tmp_path / "ws"
    (ws / "sub").mkdir(parents=True)
    (ws / "sub" / "one.bin").write_bytes(os.urandom(1 << 20))
    assert over_limit(cfg, ws) is None
    with open(ws / "sparse.bin", "wb") as f:  # 1 GB of size, no blocks: it costs the disk nothing
        f.truncate(1 << 30)
    assert over_limit(cfg, ws) is None
    locked = ws / "locked"
    locked.mkdir()
    (locked / "two.bin").write_bytes(os.urandom(2 << 20))
    os.chmod(locked, 0)  # the agent's, as the host user: opened to be measured
    why = over_limit(cfg, ws)
    assert why is not None and "max_workspace_mb (2 MB)" in why
    os.chmod(locked, 0o700)
    (locked / "two.bin").unlink()
    for i in range(10 * 10 + 1000):
        (ws / f"e{i}").touch()  # empty files cost no blocks: the entry count stops them
    why = over_limit(cfg, ws)
    assert why is not None and "1100 entries" in why


def test_notes_are_cut_in_place(example_lab: Path) -> None:
    cfg = lab_cfg(example_lab, max_notes_kb=16)
    notes = notes_file(cfg, 0)
    notes.parent.mkdir(parents=True)
    notes.write_text("keep this\n" * 1000)  # 10 KB: under the cap
    assert not cap_notes(cfg, 0)
    with open(notes, "a") as f:
        f.write("x" * (1 << 20))
    inode = os.stat(notes).st_ino
    assert cap_notes(cfg, 0)
    text = notes.read_text()
    assert os.stat(notes).st_ino == inode  # the same file: the container's bind mount sees the cut
    assert len(text.encode()) <= 16 * 1024 and text.startswith("keep this\n")
    assert text.splitlines()[-1].startswith("[arl] notes.md is capped at 16 KB ([sandbox] max_notes_kb)")
    os.unlink(notes)
    os.symlink("/etc/passwd", notes)  # never followed
    assert not cap_notes(cfg, 0) and os.path.getsize("/etc/passwd") > 0
