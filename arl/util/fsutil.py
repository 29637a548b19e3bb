"""Small file helpers: atomic writes, JSON, resource lookup."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any


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


def resource_dir(name: str) -> Path:
    """`templates/` or `hooks/`: inside the package in a wheel, beside it in a checkout."""
    pkg = Path(__file__).resolve().parents[1]  # the arl package
    for candidate in (pkg / name, pkg.parent / name):
        if candidate.is_dir():
            return candidate
    from arl.errors import ArlError

    raise ArlError(f"arl is installed without its {name}/ folder (looked in {pkg} and {pkg.parent})")


def appended_lines(path: Path, offset: int) -> bytes:
    """The complete lines written to `path` after byte `offset` (b"" when none, or when the file cannot be read).
    A line still being written waits for the next call: the caller moves its offset by what it got."""
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            chunk = f.read()
    except OSError:
        return b""
    return chunk[: chunk.rfind(b"\n") + 1]
