"""An agent's private workspace, and every place the host writes a tree out as files.

The agent's container mounts `.arl/workspaces/<slot>/`, never the lab's pipeline folder. The host imports the
workspace as data (arl.git.gittree), restores it in place from git objects, and writes the user's pipeline folder
only from git objects, when a keep lands. `Workspace` is the one interface the loop uses, so that a workspace
can live elsewhere (a Docker volume on another engine) without the loop changing."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Protocol

from arl.config.config import LabConfig
from arl.git import gitobjects, treefs
from arl.git.gittree import HashCache, Limits, Scan, scan
from arl.sandbox.spec import Mount
from arl.util import sh

MOUNT = "/workspace/pipeline"


class Workspace(Protocol):
    """A slot's workspace as the loop uses it; `LocalWorkspace` is the one a bind mount serves (an engine whose
    containers cannot see the lab's folder would bring its own)."""

    slot: int
    path: Path  # where the host reads it (its size, for the disk guard)

    def mount(self) -> Mount: ...

    def seed(self, tree: str) -> None:
        """Make the workspace exactly `tree`, in place (a running container keeps its mount)."""
        ...

    def import_tree(self, strict: bool = True) -> Scan:
        """Build the workspace's git tree as data; its objects wait in a quarantine until a snapshot records it."""
        ...

    def exists(self) -> bool: ...

    def restore_cut_short(self) -> bool: ...


def limits(cfg: LabConfig) -> Limits:
    return Limits(max_depth=cfg.max_depth, max_files=cfg.max_files, max_bytes=int(cfg.max_workspace_mb * 1024 * 1024))


class LocalWorkspace:
    """A folder under the lab's `.arl/` (mode 0700 parents), bind-mounted into the slot's container."""

    def __init__(self, cfg: LabConfig, slot: int = 0) -> None:
        self.cfg = cfg
        self.slot = slot
        self.parent = cfg.state_dir / "workspaces"
        self.path = self.parent / str(slot)

    def mount(self) -> Mount:
        return Mount(self.path.resolve(), MOUNT, read_only=False)

    def exists(self) -> bool:
        return self.path.is_dir() and not self.path.is_symlink()

    def _create(self) -> None:
        for d in (self.cfg.state_dir, self.parent):
            d.mkdir(exist_ok=True)
        os.chmod(self.parent, 0o700)  # other users of the machine never read an agent's work
        if os.path.lexists(self.path) and not self.exists():
            os.unlink(self.path)
        self.path.mkdir(exist_ok=True)
        os.chmod(self.path, 0o700)  # the agent runs as the host user: it needs nothing more

    def seed(self, tree: str) -> None:
        self._create()
        # Journalled: a restore cut short (kill -9) is redone, never mistaken for the agent's own work.
        marker = self._marker()
        marker.write_text(tree)
        left = treefs.wipe(self.path)
        if left:
            # Something the host cannot remove: move the whole folder aside and start a new one.
            aside = self.parent / f".broken-{self.slot}-{time.time_ns()}"
            os.rename(self.path, aside)
            sh.say(f"  workspace {self.slot} could not be emptied ({left[0]}); recreated it, the old one is {aside}")
            self._create()
        from arl.util import faults

        faults.point("workspace:after-wipe")
        checkout(self.cfg, tree, self.path, emptied=True)
        self._cache_path().unlink(missing_ok=True)
        marker.unlink()

    def restore_cut_short(self) -> bool:
        """Did the host die while restoring this workspace? (Then its content is the host's, not the agent's.)"""
        return self._marker().exists()

    def _marker(self) -> Path:
        return self.parent / f".restoring-{self.slot}"

    def import_tree(self, strict: bool = True) -> Scan:
        if not self.exists():
            return Scan(tree="", problems=["the workspace folder is missing"])
        cache = self._load_cache()
        store = gitobjects.quarantine(self.cfg, self.slot)  # into the repository only once recorded (promote)
        result = scan(self.path, limits(self.cfg), strict=strict, store=store, cache=cache)
        self._save_cache(cache)
        if result.tree:
            where = gitobjects.shown(self.cfg, store.dir)
            sh.note(f"imported {gitobjects.shown(self.cfg, self.path)} as tree {result.tree} (new objects in {where})")
        return result

    def _cache_path(self) -> Path:
        return self.parent / f".hashes-{self.slot}.json"

    def _load_cache(self) -> HashCache:
        try:
            raw = json.loads(self._cache_path().read_text())
            return {(a, b, c, d): oid for a, b, c, d, oid in raw}
        except (OSError, ValueError, TypeError):
            return {}

    def _save_cache(self, cache: HashCache) -> None:
        from arl.util.fsutil import atomic_write

        atomic_write(self._cache_path(), json.dumps([[*k, v] for k, v in cache.items()]), fsync=False)


def workspace(cfg: LabConfig, slot: int = 0) -> Workspace:
    return LocalWorkspace(cfg, slot)


def checkout(cfg: LabConfig, tree: str, dest: Path, emptied: bool = False) -> None:
    """Write every file of `tree` under `dest` (empty or host-owned) from git objects."""
    gitobjects.promote(cfg, tree)  # an import verified (or restored) before it is recorded
    entries = gitobjects.list_tree(cfg, tree)
    blobs = gitobjects.read(cfg, sorted({oid for _, _, oid in entries}))
    content = {oid: got[1] for oid, got in zip(sorted({oid for _, _, oid in entries}), blobs) if got}
    treefs.write(dest, ((path, mode, content[oid]) for path, mode, oid in entries if mode != b"160000"))
    how = "emptied, then wrote" if emptied else "wrote"
    sh.note(f"{how} {gitobjects.shown(cfg, dest)} from tree {tree} ({len(entries)} files)")


def fresh_checkout(cfg: LabConfig, tree: str, purpose: str) -> Path:
    """A new host-owned folder holding `tree`, for a read-only mount (verification)."""
    base = cfg.state_dir / "checkouts"
    base.mkdir(parents=True, exist_ok=True)
    os.chmod(base, 0o700)
    dest = base / f"{purpose}-{tree[:12]}-{os.getpid()}-{time.time_ns()}"
    dest.mkdir()
    checkout(cfg, tree, dest)
    return dest


def discard_checkout(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
    sh.note(f"removed {path}")


def sync_worktree(cfg: LabConfig, old: str, new: str) -> None:
    """Bring the user's pipeline folder from tree `old` to tree `new`: removed files go, changed files are
    written from git objects. Files git does not track there (a cache, say) stay."""
    if old == new:
        return
    g = sh.git(gitobjects.top(cfg))
    _, out, _ = sh.run_bytes(g["diff-tree", "-r", "-z", "--no-renames", old, new], quiet=True)
    fields = out.split(b"\0")
    gone: list[bytes] = []
    wanted: list[tuple[bytes, bytes, str]] = []
    for meta, path in zip(fields[0::2], fields[1::2]):
        if not meta.startswith(b":"):
            continue
        _, new_mode, _, new_oid, status = meta[1:].split(b" ")
        if status in (b"D", b"T"):
            gone.append(path)
        if status != b"D" and new_mode != b"160000":
            wanted.append((path, new_mode, new_oid.decode()))
    cfg.pipeline_dir.mkdir(parents=True, exist_ok=True)
    treefs.remove(cfg.pipeline_dir, gone)
    oids = sorted({oid for _, _, oid in wanted})
    content = {oid: got[1] for oid, got in zip(oids, gitobjects.read(cfg, oids)) if got}
    treefs.write(cfg.pipeline_dir, ((p, m, content[o]) for p, m, o in sorted(wanted)))
    where = gitobjects.shown(cfg, cfg.pipeline_dir)
    sh.note(f"brought {where} from tree {old} to {new} ({len(wanted)} files written, {len(gone)} removed)")


def workspace_tree(cfg: LabConfig) -> tuple[str, str]:
    """(tree id, "") of the pipeline as the agent sees it in the sandbox, or ("", why the host would refuse to
    import it): what `arl eval` and `arl verdict` send with a proposal."""
    found = scan(cfg.pipeline_dir, limits(cfg), algo=os.environ.get("ARL_OBJECT_FORMAT", "sha1"))
    return found.tree, (found.problems[0] if found.problems else "")
