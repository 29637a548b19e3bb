"""The user's repository as an object store: reading trees and blobs in one batch, building trees as data.

git runs here only in the user's repository (never in a workspace), and only plumbing that reads objects or
writes refs: no attributes, filters or hooks apply to anything an agent wrote."""

from __future__ import annotations

import functools
import os
import shutil
import zlib
from pathlib import Path

from arl.config.config import LabConfig
from arl.git.gittree import DIR, LooseStore, empty_tree, object_id, tree_bytes
from arl.git.repo import rel, top
from arl.util import sh

Entry = tuple[bytes, bytes, str]  # (path or name, mode, object id)


@functools.lru_cache(maxsize=8)
def _repo_info(root: Path) -> tuple[str, Path]:
    g = sh.git(root)
    code, out, _ = sh.run(g["rev-parse", "--show-object-format", "--git-path", "objects"], ok=None, quiet=True)
    lines = out.split("\n")
    if code != 0 or len(lines) < 2 or lines[0] not in ("sha1", "sha256"):
        # git older than 2.25 has no --show-object-format: such a git only knows sha1.
        _, out, _ = sh.run(g["rev-parse", "--git-path", "objects"], quiet=True)
        lines = ["sha1", out.strip()]
    objects = Path(lines[1].strip())
    return lines[0], objects if objects.is_absolute() else (root / objects).resolve()


def algo(cfg: LabConfig) -> str:
    return _repo_info(top(cfg))[0]


def store(cfg: LabConfig) -> LooseStore:
    fmt, objects = _repo_info(top(cfg))
    return LooseStore(objects, fmt)


class Quarantine(LooseStore):
    """Where an import writes the objects the repository lacks: beside it, not in it. Only a recorded snapshot
    (or a verification) moves a tree's objects into the repository (`promote`); a rejected verdict's are dropped
    with the slot's next import, so stale or refused keeps never grow `.git/objects`."""

    def __init__(self, real: LooseStore, folder: Path) -> None:
        super().__init__(folder, real.algo)
        self.real = real

    def has(self, oid: str) -> bool:
        return self.real.has(oid) or super().has(oid)

    def put(self, kind: bytes, data: bytes, oid: str | None = None) -> str:
        oid = oid or object_id(kind, data, self.algo)
        return oid if self.real.has(oid) else super().put(kind, data, oid)


def quarantines(cfg: LabConfig) -> Path:
    return cfg.state_dir / "quarantine"


def quarantine(cfg: LabConfig, slot: int) -> Quarantine:
    """The slot's quarantine, emptied: what its last import wrote was either promoted by now or never will be."""
    folder = quarantines(cfg) / str(slot)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True, mode=0o700)
    os.chmod(quarantines(cfg), 0o700)
    return Quarantine(store(cfg), folder)


def promote(cfg: LabConfig, tree: str) -> None:
    """Move every object of `tree` that sits in a quarantine into the repository, each folder's entries before
    the folder itself: a repository tree is always complete, so a tree already there ends the walk."""
    try:
        folders = [quarantines(cfg) / name for name in os.listdir(quarantines(cfg))]
    except OSError:
        return
    real = store(cfg)
    stack: list[tuple[str, bool, bool]] = [(tree, True, False)]  # (id, is a tree, its entries are done)
    moved = 0
    while stack:
        oid, is_tree, done = stack.pop()
        if real.has(oid):
            continue
        found = next((p for p in (f / oid[:2] / oid[2:] for f in folders) if p.exists()), None)
        if found is None:
            continue  # in neither: git says so when it reads it
        if is_tree and not done:
            stack.append((oid, True, True))
            raw = zlib.decompress(found.read_bytes())
            for _, mode, child in parse_tree(raw[raw.index(b"\0") + 1 :], len(oid)):
                if mode != b"160000":
                    stack.append((child, mode == DIR, False))
            continue
        target = real.path(oid)
        target.parent.mkdir(exist_ok=True)
        try:
            os.replace(found, target)
        except OSError:  # another file system: copy, then rename into place
            tmp = target.parent / f"tmp_obj_{os.getpid()}_{oid[:8]}"
            shutil.copyfile(found, tmp)
            os.chmod(tmp, 0o444)
            os.replace(tmp, target)
        moved += 1
    if moved:
        sh.note(f"moved {moved} objects of tree {tree} from {shown(cfg, quarantines(cfg))} into {shown(cfg, real.dir)}")


def shown(cfg: LabConfig, path: Path) -> str:
    """A path as the printed lines name it: relative to the lab when inside it (they are pasted in the lab)."""
    try:
        return str(path.resolve().relative_to(cfg.root.resolve())) or "."
    except ValueError:
        return str(path)


def read(cfg: LabConfig, specs: list[str], quiet: bool = True) -> list[tuple[str, bytes] | None]:
    """(type, content) of each object name (`<sha>`, `HEAD:dir`...), None when missing: one `git cat-file`."""
    if not specs:
        return []
    stdin = "".join(s + "\n" for s in specs).encode()
    _, out, _ = sh.run_bytes(sh.git(top(cfg))["cat-file", "--batch"], stdin=stdin, quiet=quiet)
    results: list[tuple[str, bytes] | None] = []
    pos = 0
    for _ in specs:
        end = out.index(b"\n", pos)
        header = out[pos:end].split(b" ")
        pos = end + 1
        if len(header) != 3:  # "<name> missing" / "ambiguous"
            results.append(None)
            continue
        size = int(header[2])
        results.append((header[1].decode(), out[pos : pos + size]))
        pos += size + 1
    return results


def parse_tree(data: bytes, hexlen: int) -> list[Entry]:
    entries: list[Entry] = []
    pos, n = 0, hexlen // 2
    while pos < len(data):
        sp = data.index(b" ", pos)
        nul = data.index(b"\0", sp)
        entries.append((data[sp + 1 : nul], data[pos:sp], data[nul + 1 : nul + 1 + n].hex()))
        pos = nul + 1 + n
    return entries


def pipeline_tree(cfg: LabConfig, rev: str = "HEAD") -> str:
    """The pipeline's tree in a commit (the empty tree when the commit has no pipeline)."""
    got = read(cfg, [f"{rev}:{rel(cfg, cfg.pipeline_dir)}"])[0]
    if got is None or got[0] != "tree":
        return empty_tree(algo(cfg))
    return object_id(b"tree", got[1], algo(cfg))


def list_tree(cfg: LabConfig, tree: str) -> list[Entry]:
    """Every file and link of a tree, recursively, as (path, mode, id), in git's order."""
    _, out, _ = sh.run_bytes(sh.git(top(cfg))["ls-tree", "-r", "-z", "--full-tree", tree], quiet=True)
    entries: list[Entry] = []
    for item in out.split(b"\0"):
        if not item:
            continue
        meta, _, path = item.partition(b"\t")
        mode, _, oid = meta.split(b" ")
        entries.append((path, mode, oid.decode()))
    return entries


def with_path(cfg: LabConfig, base: str, path: str, tree_or_blob: str, mode: bytes = DIR) -> str:
    """A copy of commit `base`'s root tree with `path` replaced (an empty tree removes it). Written as data."""
    s = store(cfg)
    parts = path.split("/")
    parents = read(cfg, [f"{base}^{{tree}}"] + [f"{base}:{'/'.join(parts[:i])}" for i in range(1, len(parts))])
    oid = tree_or_blob
    empty = empty_tree(s.algo)
    hexlen = len(empty)
    for depth in range(len(parts) - 1, -1, -1):
        got = parents[depth]
        entries = parse_tree(got[1], hexlen) if got is not None and got[0] == "tree" else []
        name = parts[depth].encode()
        entries = [e for e in entries if e[0] != name]
        if not (mode == DIR and oid == empty):  # git holds no empty folders
            entries.append((name, mode, oid))
        oid = s.put(b"tree", tree_bytes(entries))
        mode = DIR
    sh.note(f"wrote tree {oid} into {shown(cfg, s.dir)}: {base}'s tree with {path} = {tree_or_blob}")
    return oid
