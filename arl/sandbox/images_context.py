"""What a sandbox image is built from, as one hash: the files of a build context (as Docker sends them)."""

from __future__ import annotations

import hashlib
import os
import re
import stat
from pathlib import Path


def tree_digest(root: Path, ignore: list[str] | None = None, extra: bytes = b"") -> str:
    """Content hash of a build context: paths, exec bits, bytes, link targets (.git, .arl and caches left out)."""
    h = hashlib.sha256(extra)
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = Path(dirpath).relative_to(root)
        dirnames[:] = sorted(
            d for d in dirnames if d not in (".git", ".arl", "__pycache__") and not _ignored(rel_dir / d, ignore)
        )
        for name in sorted(filenames):
            rel, full = rel_dir / name, Path(dirpath) / name
            if name.endswith(".pyc") or _ignored(rel, ignore):
                continue
            st = full.lstat()
            h.update(f"{rel.as_posix()}\0{st.st_mode & 0o111 and 'x'}\0".encode())
            h.update(os.readlink(full).encode() if stat.S_ISLNK(st.st_mode) else full.read_bytes())
    return h.hexdigest()[:16]


def _ignored(rel: Path, patterns: list[str] | None) -> bool:
    """.dockerignore as Docker reads it: `*` stops at `/`, `**` does not, later patterns win, `!` re-includes, a
    matched folder hides its files. (Hashing a file Docker skips only costs a rebuild; the reverse, a stale image.)"""
    out = False
    for pat in patterns or []:
        neg, pat = pat.startswith("!"), pat.lstrip("!").strip().removeprefix("./").strip("/")
        parts = re.split(r"(\*\*/?|\*|\?)", pat)
        rx = re.compile(
            "".join({"**/": "(.*/)?", "**": ".*", "*": "[^/]*", "?": "[^/]"}.get(p, re.escape(p)) for p in parts)
        )
        candidates = [rel.as_posix()] + [p.as_posix() for p in rel.parents if p.as_posix() != "."]
        if any(rx.fullmatch(c) for c in candidates):
            out = not neg
    return out


def dockerignore(context: Path) -> list[str]:
    try:
        text = (context / ".dockerignore").read_text()
    except OSError:
        return []
    return [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
