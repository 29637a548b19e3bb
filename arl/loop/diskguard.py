"""What an agent may take of the host's disk between verdicts. Every CHECK_EVERY seconds of waiting, each slot's
agent is frozen while the host cuts its notes file to `[sandbox] max_notes_kb`, holds its control folder to its caps
and measures its workspace (a du-like walk that stops once past the limit). A workspace past
`[sandbox] max_workspace_mb` stops the slot: its attempt is recorded as a crash with the reason (what the import
could not hold named), and the agent is relaunched from the best tree, instead of the disk filling up. The import at
a verdict applies the same limit to what is kept."""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path

from arl.channel import channel
from arl.config.config import LabConfig
from arl.engines.choose import engine_of
from arl.loop import experiments
from arl.loop.costs import close_container_cost
from arl.loop.launching import notes_file, start_container
from arl.loop.run import stop_reason
from arl.runstate import slots, state
from arl.runstate.runstate import RunState
from arl.sandbox.workspace import workspace

CHECK_EVERY = 30.0  # seconds; a check freezes each agent for the time of a walk and two engine calls


def check(cfg: LabConfig, st: RunState) -> bool:
    """From the waiting loop, as often as it likes: True when a slot was stopped for its disk use (then the loop
    returns, and the stop rule runs before anything else)."""
    # When the last check was: a file's time, so that `make research` (a process per step) checks every 30 s too.
    stamp = cfg.state_dir / "disk-checked"
    try:
        if 0 <= time.time() - stamp.stat().st_mtime < CHECK_EVERY:  # a clock set back: checked now
            return False
    except OSError:
        pass
    stamp.touch(mode=0o600)
    os.utime(stamp)
    stopped = False
    for k in slots.numbers(st):
        name = slots.of(st, k).get("container")
        if not name:
            continue
        frozen = engine_of(cfg, st).freeze(name)  # no write races the measurement
        over = None
        try:
            cap_notes(cfg, k)
            # a temp file the agent keeps growing has a protocol name: the folder's 4 MB cap removes it
            channel.tidy(slots.control_dir(cfg, k), slots.of(st, k).get("seq", 0), cfg.state_dir / "verdicts")
            over = over_limit(cfg, workspace(cfg, k).path)
        finally:
            if frozen and over is None:
                engine_of(cfg, st).thaw(name)
        if over is not None:
            stop_slot(cfg, st, k, over)
            stopped = True
    return stopped


def over_limit(cfg: LabConfig, root: Path) -> str | None:
    """Why the workspace takes too much of the disk, or None. Counts allocated blocks (a sparse file costs what it
    holds), never follows a link, opens folders the agent locked (they are the host user's), and stops as soon as the
    limit is passed: the walk's cost is bounded by the limit, not by what the agent wrote."""
    limit = int(cfg.max_workspace_mb * 1024 * 1024)
    max_entries = 10 * cfg.max_files + 1000  # empty files cost no blocks, but each costs an inode and a walk step
    used = entries = 0
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            listing = list(os.scandir(folder))
        except PermissionError:
            try:
                os.chmod(folder, 0o700, follow_symlinks=False)
                listing = list(os.scandir(folder))
            except (OSError, NotImplementedError):
                continue
        except OSError:
            continue
        for entry in listing:
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            used += st.st_blocks * 512
            entries += 1
            if used > limit:
                return f"the workspace grew past max_workspace_mb ({cfg.max_workspace_mb:g} MB) while the agent ran"
            if entries > max_entries:
                return f"the workspace grew past {max_entries} entries (10 x max_files) while the agent ran"
            if stat.S_ISDIR(st.st_mode):
                stack.append(Path(entry.path))
    return None


def cap_notes(cfg: LabConfig, slot: int) -> bool:
    """Cut the slot's notes file (bind-mounted as /workspace/notes.md: cut in place, the same file) to the cap, and
    end it with a line that tells the agent. True when it was cut."""
    cap = int(cfg.max_notes_kb * 1024)
    path = notes_file(cfg, slot)
    try:
        if os.lstat(path).st_size <= cap:
            return False
        fd = os.open(path, os.O_RDWR | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return False
    with os.fdopen(fd, "r+b") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            return False
        line = (
            f"\n[arl] notes.md is capped at {cfg.max_notes_kb:g} KB ([sandbox] max_notes_kb); the host cut what was "
            "beyond. Keep it short: summarise instead of appending.\n"
        ).encode()
        f.truncate(max(cap - len(line), 0))
        f.seek(0, os.SEEK_END)
        f.write(line)
    print(f"arl: cut the notes of slot {slot} to {cfg.max_notes_kb:g} KB ([sandbox] max_notes_kb)", flush=True)
    return True


def stop_slot(cfg: LabConfig, st: RunState, slot: int, why: str) -> None:
    """The agent (still frozen) is killed, what it left is saved as a crash with `why`, the workspace is restored
    to the best tree (which frees the disk), and a new agent starts unless the run is over."""
    sl = slots.of(st, slot)
    name = sl.get("container") or ""
    print(f"{why}{f' (slot {slot})' if slots.count(st) > 1 else ''}: stopping the agent", flush=True)
    cost_before = sl.get("cost_attributed", 0.0)
    engine_of(cfg, st).remove(name, grace=0)
    close_container_cost(cfg, st, slot)
    sl["cost_attributed"] = sl.get("cost", 0.0)
    tree, left_out = experiments.salvage(cfg, slot)
    attempt = experiments.Attempt(
        tree, f"[arl] {why}{left_out}", cost=max(sl["cost_attributed"] - cost_before, 0.0), slot=slot
    )
    experiments.progress(cfg, st, experiments.record_failed(cfg, st, "crash", attempt))
    sl.update(container=None, restarts=sl.get("restarts", 0) + 1, last_progress=time.time())
    st["iterations"] = st.get("iterations", 0) + 1
    state.save(cfg, st)
    if stop_reason(cfg, st) is None:
        start_container(cfg, st, slot, reseed=False)  # record_failed has just restored the workspace to the best
