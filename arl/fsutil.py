"""Small file helpers: atomic writes, pipeline hashing, resource lookup."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import tempfile
from pathlib import Path
from typing import Any

# Files a Python evaluation leaves behind; they are not part of the code.
IGNORED_NAMES = {"__pycache__", ".pytest_cache"}


def atomic_write(path: Path, data: str | bytes, *, fsync: bool = True) -> None:
    """Write via temp file + rename so a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    raw = data.encode() if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(raw)
            if fsync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def write_json(path: Path, obj: Any, *, fsync: bool = True) -> None:
    atomic_write(path, json.dumps(obj, indent=1, sort_keys=True, default=_json_default) + "\n", fsync=fsync)


def _json_default(o: Any) -> Any:
    # numpy scalars and arrays serialise through their Python equivalents
    for attr in ("item", "tolist"):
        if hasattr(o, attr):
            return getattr(o, attr)()
    if isinstance(o, Path):
        return str(o)
    return str(o)


def dumps(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, default=_json_default)


def tree_hash(root: Path) -> str:
    """Hash of a folder's files, modes and symlink targets, never following links.

    The agent's `arl eval` and the host compute it the same way, so the host can tell
    whether the tree it is about to commit is the tree that was evaluated."""
    h = hashlib.sha256()
    if not root.is_dir():
        return "missing"
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in IGNORED_NAMES)
        rel_dir = os.path.relpath(dirpath, root)
        for name in sorted(filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]):
            if name.endswith(".pyc"):
                continue
            full = os.path.join(dirpath, name)
            rel = os.path.normpath(os.path.join(rel_dir, name))
            st = os.lstat(full)
            h.update(rel.encode("utf-8", "surrogateescape") + b"\0")
            if stat.S_ISLNK(st.st_mode):
                h.update(b"L" + os.readlink(full).encode("utf-8", "surrogateescape"))
            elif stat.S_ISREG(st.st_mode):
                h.update(b"X" if st.st_mode & 0o111 else b"F")
                with open(full, "rb") as f:
                    for chunk in iter(lambda: f.read(1 << 16), b""):
                        h.update(chunk)
            h.update(b"\0")
    return h.hexdigest()[:16]


def resource_dir(name: str) -> Path:
    """`templates/` or `hooks/`: inside the package in a wheel, beside it in a checkout."""
    pkg = Path(__file__).resolve().parent
    for candidate in (pkg / name, pkg.parent / name):
        if candidate.is_dir():
            return candidate
    from .errors import ArlError

    raise ArlError(f"arl is installed without its {name}/ folder (looked in {pkg} and {pkg.parent})")
