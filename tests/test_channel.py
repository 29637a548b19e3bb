"""The control folder on the host, without Docker: only the protocol's names stay, a flood is drained once and
costs little afterwards, nothing the agent wrote is archived unless it is a plain file, and `.arl/` is private."""

from __future__ import annotations

import json
import os
import shutil
import stat
import time
from pathlib import Path

import pytest

from arl.channel import channel, verdicts
from arl.config.config import load
from arl.runstate import state

HOST = ("expected.json", "prompt.md", "ack-3.json", "ack-4.json")


def control_with(tmp_path: Path) -> tuple[Path, Path]:
    control = tmp_path / ".arl" / "control"
    control.mkdir(parents=True)
    (control / "expected.json").write_text(json.dumps({"seq": 4}))
    (control / "prompt.md").write_text("the prompt")
    (control / "ack-3.json").write_text("{}")
    (control / "ack-4.json").write_text("{}")
    return control, tmp_path / ".arl" / "verdicts"


def test_only_protocol_names_stay(tmp_path: Path) -> None:
    control, _ = control_with(tmp_path)
    junk = ["report.json", "hold-x", "ack-junk-1", "ack-4.json.bak", ".hidden", "verdict-4.txt", "seen.txt"]
    for name in junk:
        (control / name).write_text("x")
    (control / "dir").mkdir()
    (control / "dir" / "inside").write_text("x")
    os.symlink("/etc/passwd", control / "link")
    os.mkfifo(control / "fifo")
    temp = ".verdict-4.json.ab12cd_9.tmp"  # an `arl verdict` write under way
    (control / temp).write_text("{")
    (control / "verdict-4.json").write_text("{}")
    got = verdicts.sweep(control)
    assert got == [control / "verdict-4.json"]
    assert sorted(os.listdir(control)) == sorted([*HOST, temp, "verdict-4.json"])
    assert os.path.exists("/etc/passwd")  # the link was removed, not followed


def test_a_flood_is_drained_once_and_later_polls_are_cheap(tmp_path: Path) -> None:
    control, _ = control_with(tmp_path)
    n = 50_000  # the hostile suite floods with 200,000; this many makes the same point in a few seconds
    fd = os.open(control, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for i in range(n):
            os.close(os.open(f"ack-junk-{i}", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd))
    finally:
        os.close(fd)
    started = time.monotonic()
    assert verdicts.sweep(control) == []
    drained = time.monotonic() - started
    assert sorted(os.listdir(control)) == sorted(HOST)
    # The waiting loop polls every 5 ms: 2 s of it, listing the swept (still large) folder every FULL_SCAN only.
    (control / "verdict-4.json").write_text("{}")
    started = time.monotonic()
    cpu = time.process_time()
    polls = 0
    while time.monotonic() - started < 2:
        assert verdicts.pending(control) == [control / "verdict-4.json"]
        polls += 1
        time.sleep(0.005)
    busy = (time.process_time() - cpu) / (time.monotonic() - started)
    assert polls > 100 and busy < 0.1, f"{busy:.0%} of a core while polling ({drained:.1f} s to drain)"


def test_acks_past_the_cap_are_shed_by_the_poller(tmp_path: Path) -> None:
    """ack-<seq>.json is a protocol name: 100 of them forged by the agent are over the cap, and all but the
    current two (expected.json's seq - 1 and seq) go, without waiting for a decision."""
    control, _ = control_with(tmp_path)
    for i in range(10, 110):
        (control / f"ack-{i}.json").write_text("{}")
    verdicts.sweep(control)
    assert sorted(os.listdir(control)) == sorted(HOST)


def test_tidy_removes_acks_and_non_files_and_archives_only_plain_files(tmp_path: Path) -> None:
    control, archive = control_with(tmp_path)
    (control / "ack-1.json").write_text('{"seq": 1}')  # answered long ago: archived, one per seq
    (control / "ack-2.json").mkdir()  # a forged one, a folder with a setuid shell: removed
    shutil.copy("/bin/sh", control / "ack-2.json" / "sh")
    os.chmod(control / "ack-2.json" / "sh", 0o4755)
    (control / "ack-77.json").write_text("{}")  # ahead of any answer: forged, removed
    evil = control / "verdict-9.json"  # a folder holding a setuid copy of a shell
    evil.mkdir()
    shutil.copy("/bin/sh", evil / "sh")
    os.chmod(evil / "sh", 0o4755)
    channel.tidy(control, 4, archive)
    assert sorted(os.listdir(control)) == sorted([*HOST, "ack-9.json"])  # rejected, answered, removed
    assert os.listdir(archive) == ["ack-1.json"]
    (control / "ack-1.json").write_text("forged again")
    channel.tidy(control, 4, archive)
    assert not (control / "ack-1.json").exists() and (archive / "ack-1.json").read_text() == '{"seq": 1}'
    (archive / "ack-1.json").unlink()

    for kind in ("dir", "link", "fifo", "hardlink", "huge"):
        path = control / "verdict-4.json"
        if kind == "dir":
            path.mkdir()
            shutil.copy("/bin/sh", path / "sh")
            os.chmod(path / "sh", 0o6755)
        elif kind == "link":
            os.symlink("/bin/sh", path)
        elif kind == "fifo":
            os.mkfifo(path)
        elif kind == "huge":
            path.write_bytes(b" " * (verdicts.MAX_BYTES + 1))  # rejected as too large: not worth keeping
        else:
            (tmp_path / "elsewhere").write_text("{}")
            os.link(tmp_path / "elsewhere", path)
        channel.archive(path, archive)
        assert not os.path.lexists(path), kind
        assert not archive.exists() or os.listdir(archive) == [], kind
    assert os.path.exists("/bin/sh") and not os.stat("/bin/sh").st_mode & stat.S_ISUID

    plain = control / "verdict-4.json"
    plain.write_text('{"seq": 4}')
    os.chmod(plain, 0o4755)
    channel.archive(plain, archive)
    kept = archive / "verdict-4.json"
    assert stat.S_IMODE(os.lstat(kept).st_mode) == 0o600 and stat.S_IMODE(os.lstat(archive).st_mode) == 0o700


def test_the_cap_counts_acks_and_what_the_agent_wrote(tmp_path: Path) -> None:
    control, archive = control_with(tmp_path)
    for i in range(80):
        (control / f"verdict-x{i}.json").write_text("{}")
    removed = channel.tidy(control, 4, archive)
    left = os.listdir(control)
    assert len(removed) == 80 and set(HOST) <= set(left) and not [n for n in left if n.startswith("verdict-")]
    assert len(left) <= verdicts.MAX_FILES  # the answers to the ones read (rejected: a bad name) count too


def test_make_private(tmp_path: Path) -> None:
    root = tmp_path / ".arl"
    (root / "workspaces" / "0" / "sub").mkdir(parents=True)
    (root / "logs").mkdir()
    files = {
        "state.json": 0o644,
        "logs/a.jsonl": 0o664,
        "workspaces/0/run.sh": 0o755,
        "workspaces/0/sub/suid": 0o4755,
        "workspaces/0/sub/sgid": 0o2644,
    }
    for rel, mode in files.items():
        (root / rel).write_text("x")
        os.chmod(root / rel, mode)
    os.chmod(root / "workspaces" / "0", 0o1777)
    os.symlink("/bin/sh", root / "workspaces" / "0" / "link")
    state.make_private(root)
    modes = {str(p.relative_to(root)): stat.S_IMODE(os.lstat(p).st_mode) for p in root.rglob("*") if not p.is_symlink()}
    assert stat.S_IMODE(os.lstat(root).st_mode) == 0o700
    assert modes == {
        "logs": 0o700,
        "workspaces": 0o700,
        "workspaces/0": 0o700,
        "workspaces/0/sub": 0o700,
        "state.json": 0o600,
        "logs/a.jsonl": 0o600,
        "workspaces/0/run.sh": 0o700,
        "workspaces/0/sub/suid": 0o700,
        "workspaces/0/sub/sgid": 0o600,
    }
    assert stat.S_IMODE(os.stat("/bin/sh").st_mode) & 0o055  # the link's target was never touched


@pytest.mark.parametrize("name", ["expected.json", "prompt.md", "ack-0.json", "verdict-12.json", "verdict-abc.json",
                                  "verdict-.json", "verdict-a\nb.json",
                                  ".verdict-7.json.k2j4_x9a.tmp", ".ack-7.json.abcdefgh.tmp"])  # fmt: skip
def test_protocol_names(name: str) -> None:
    assert verdicts.protocol_name(name)


@pytest.mark.parametrize("name", ["ack-junk", "ack-1.json.tmp", "report-x.json", ".verdict-7.json.tmp", "hold-x",
                                  "verdicts", "seen.txt", "go", "ack-1.JSON", "expected.json~"])  # fmt: skip
def test_names_the_protocol_does_not_define(name: str) -> None:
    assert not verdicts.protocol_name(name)


def test_an_existing_labs_arl_is_made_private_by_the_next_run(example_lab: Path) -> None:
    """A lab from before (or one a person opened up): the next run's lock makes .arl/ private, and the end of the run
    leaves no quarantine and no junk in the control folder."""
    cfg = load(example_lab / "lab.toml")
    old = cfg.state_dir / "verdicts"
    old.mkdir(parents=True)
    for folder in (cfg.state_dir, old):
        os.chmod(folder, 0o755)
    (old / "verdict-1.json").write_text("{}")
    os.chmod(old / "verdict-1.json", 0o4755)
    state.acquire_lock(cfg, os.getpid())
    assert stat.S_IMODE(os.lstat(cfg.state_dir).st_mode) == 0o700
    assert stat.S_IMODE(os.lstat(old).st_mode) == 0o700
    assert stat.S_IMODE(os.lstat(old / "verdict-1.json").st_mode) == 0o700  # executable by its owner, nothing more
    control = cfg.state_dir / "control"
    control.mkdir()
    (control / "expected.json").write_text('{"seq": 0}')
    (control / "left-behind.txt").write_text("junk")
    (cfg.state_dir / "quarantine" / "0").mkdir(parents=True)
    (cfg.state_dir / "logs").mkdir()
    (cfg.state_dir / "logs" / "x.jsonl").write_text("{}")
    state.release_lock(cfg)
    assert os.listdir(control) == ["expected.json"]
    assert not (cfg.state_dir / "quarantine").exists()
    assert stat.S_IMODE(os.lstat(cfg.state_dir / "logs" / "x.jsonl").st_mode) == 0o600
