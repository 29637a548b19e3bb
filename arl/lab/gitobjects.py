"""The user's repository as an object store: reading trees and blobs in one batch, building trees as data.

git runs here only in the user's repository (never in a workspace), and only plumbing that reads objects or
writes refs: no attributes, filters or hooks apply to anything an agent wrote."""

from __future__ import annotations

import functools
from pathlib import Path

from arl.lab.config import LabConfig
from arl.lab.gitops import rel, top
from arl.lab.gittree import DIR, LooseStore, empty_tree, tree_bytes
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
    from arl.lab.gittree import object_id

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
    return oid
