"""The run state in `.arl/`: one JSON file written atomically, and the one-run-per-lab lock."""

from __future__ import annotations

import json
import os
import shutil
import stat
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict, cast

from arl.config.config import LabConfig
from arl.errors import ArlError

if TYPE_CHECKING:  # the run state's types: their TypedDicts take milliseconds to build, and a dict is what is read
    from arl.history.format import Row
    from arl.runstate.runstate import HistorySummary, RunState


class Lock(TypedDict, total=False):
    """`.arl/lock`: the process that owns the lab's run (the lock is as the file says: any key may be missing)."""

    pid: int
    since: float


# What a state written before slots kept at its top level for its one agent (slot 0). Not SlotState's keys: a slot's
# "cost" is new, and the top-level "cost" of such a state is the run's, which stays where it is.
_PRE_SLOT_KEYS = (
    "container",
    "follower",
    "launched_at",
    "last_progress",
    "shown_bytes",
    "seq",
    "verdicts_since_launch",
    "idle_ends",
    "retry_at",
    "outage_attempts",
    "outage_since",
    "last_end",
    "detected_at",
    "restarts",
    "deciding",
    "cost_closed",
    "cost_attributed",
)


def state_path(cfg: LabConfig) -> Path:
    return cfg.state_dir / "state.json"


def lock_path(cfg: LabConfig) -> Path:
    return cfg.state_dir / "lock"


def logs_dir(cfg: LabConfig) -> Path:
    return cfg.state_dir / "logs"


def load(cfg: LabConfig) -> RunState:
    """The run state on disk ({} when no run ever started here). A state written by an arl without slots has its
    slot-0 keys at the top level: they move under slots["0"], so that a run it left is repaired by this one."""
    try:
        st = json.loads(state_path(cfg).read_text())
    except FileNotFoundError:
        return cast("RunState", {})
    except ValueError:
        raise ArlError(f"{state_path(cfg)} is not valid JSON; move it away to start fresh") from None
    if not isinstance(st, dict):
        raise ArlError(f"{state_path(cfg)} is not a run state (a JSON object); move it away to start fresh")
    if not st.get("slots") and any(k in st for k in _PRE_SLOT_KEYS):
        st["slots"] = {"0": {k: st.pop(k) for k in _PRE_SLOT_KEYS if k in st}}
    return cast("RunState", st)


def save(cfg: LabConfig, st: RunState) -> None:
    from arl.util.fsutil import write_json

    write_json(state_path(cfg), st)


def require_run(cfg: LabConfig) -> RunState:
    st = load(cfg)
    if not st.get("active"):
        raise ArlError("no run is active in this lab; start one with `arl-step preflight --data DIR` or `arl run`")
    return st


def pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie is dead for our purposes.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def read_lock(cfg: LabConfig) -> Lock | None:
    try:
        return json.loads(lock_path(cfg).read_text())
    except (OSError, ValueError):
        return None


def acquire_lock(cfg: LabConfig, pid: int) -> Lock | None:
    """Take the lab's lock for `pid`. Returns the stale lock it replaced, if any. A lab's `.arl/` from before
    (or one a person opened up) is made private again first."""
    cfg.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    make_private(cfg.state_dir)
    stale = None
    held = read_lock(cfg)
    if held is not None:
        if held.get("pid") == pid:
            return None
        if pid_alive(held.get("pid")):
            raise ArlError(
                f"a run is already active in this lab (pid {held.get('pid')}); stop it first "
                f"(`kill -INT {held.get('pid')}`) or wait for it"
            )
        stale = held
    from arl.util.fsutil import write_json

    write_json(lock_path(cfg), {"pid": pid, "since": time.time()})
    return stale


def release_lock(cfg: LabConfig) -> None:
    """The run is over: what imports left in quarantine will never be recorded, the control folders keep only the
    protocol's names, and everything under `.arl/` is made private (no setuid, setgid or sticky bit) before the
    lock goes."""
    from arl.channel import verdicts

    shutil.rmtree(cfg.state_dir / "quarantine", ignore_errors=True)
    for control in cfg.state_dir.glob("control*"):  # what an agent wrote after the last poll goes too
        if control.is_dir() and not control.is_symlink():
            verdicts.sweep(control)
    make_private(cfg.state_dir)
    lock_path(cfg).unlink(missing_ok=True)


def make_private(root: Path) -> int:
    """Folders 0700 and files 0600 (0700 when their owner could run them: a workspace's scripts stay executable)
    under `root`, itself included, walked without following a link; no setuid, setgid or sticky bit survives.
    Unreadable folders the agent made are opened to their owner. Returns how many modes were changed."""
    changed = 0
    stack = [root]
    while stack:
        folder = stack.pop()
        changed += _chmod(folder, os.lstat(folder).st_mode) if folder == root else 0
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in entries:
            try:
                mode = entry.stat(follow_symlinks=False).st_mode
            except OSError:
                continue
            if stat.S_ISLNK(mode):
                continue  # a link has no mode of its own on Linux, and is never followed
            changed += _chmod(Path(entry.path), mode)
            if stat.S_ISDIR(mode):
                stack.append(Path(entry.path))
    return changed


def _chmod(path: Path, mode: int) -> int:
    want = 0o700 if stat.S_ISDIR(mode) or mode & 0o100 else 0o600
    if stat.S_IMODE(mode) == want:
        return 0
    try:
        os.chmod(path, want, follow_symlinks=False)  # a link swapped in meanwhile: refused, not followed
        return 1
    except (OSError, NotImplementedError):  # that, or not ours (made in a container as another user)
        return 0


def active_run_pid(lab_root: Path) -> int | None:
    """The pid holding a lab's lock, if alive (used by the pre-commit hook)."""
    try:
        pid = json.loads((lab_root / ".arl" / "lock").read_text()).get("pid")
    except (OSError, ValueError):
        return None
    return pid if pid_alive(pid) else None


def log_event(cfg: LabConfig, event: dict[str, Any]) -> None:
    """Append to .arl/runs.jsonl: run starts, stops and their reasons."""
    cfg.state_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(cfg.state_dir / "runs.jsonl", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    with os.fdopen(fd, "a") as f:
        f.write(json.dumps({"time": time.time(), **event}) + "\n")


def history(cfg: LabConfig, st: RunState) -> HistorySummary:
    """The history's summary (next id, best and its id, plateau, cost): the run state's while it describes
    results.tsv as it is (one stat), else made from a read of the whole file and kept in `st`."""
    held = st.get("history")
    try:
        now = os.stat(cfg.results_file)
    except FileNotFoundError:
        now = None
    if held is not None and now is not None and (held["size"], held["mtime_ns"]) == (now.st_size, now.st_mtime_ns):
        return held
    from arl.history import results  # only to make it again: a current summary needs no read, nor the parser

    rows = results.read(cfg.results_file).rows
    best, best_id = results.best_of(cfg, rows)
    made: HistorySummary = {
        "size": now.st_size if now else 0,
        "mtime_ns": now.st_mtime_ns if now else 0,
        "next_id": results.History(rows).next_id,
        "best": best,
        "best_id": best_id,
        "plateau": results.plateau(cfg, rows),
        "cost": sum(r["cost_usd"] or 0.0 for r in rows),
    }
    st["history"] = made
    return made


def record(cfg: LabConfig, st: RunState, row: Row) -> None:
    """Append `row` to results.tsv and bring the run state's summary up to date with it (the caller saves `st`)."""
    from arl.history import results

    before = history(cfg, st)
    results.append(cfg.results_file, row)
    h: HistorySummary = {**before}
    now = os.stat(cfg.results_file)
    h["size"], h["mtime_ns"] = now.st_size, now.st_mtime_ns
    if row["id"] is not None:
        h["next_id"] = max(h["next_id"], row["id"] + 1)
    h["cost"] += row["cost_usd"] or 0.0
    score = results.effective(row)
    if row["outcome"] == "baseline":  # what a keep must beat from now on: results.since_baseline
        h["best"], h["best_id"], h["plateau"] = score, row["id"] if score is not None else None, 0
    elif row["outcome"] == "keep" and score is not None and cfg.better(score, h["best"]):
        h["best"], h["best_id"], h["plateau"] = score, row["id"], 0
    else:
        h["plateau"] += 1
    st["history"] = h
