"""The parsed history on disk, `.arl/cache/<results file>.marshal`: a command that reads a long results.tsv once
(`arl results`, `arl status`, a step of `make research`) loads its rows instead of parsing every line.

Only beside a host-owned `.arl` folder (never in the sandbox, never in a folder another user owns). An entry holds
the size and a CRC of the bytes it was built from, and is checked against the bytes just read (about a millisecond
for 10,000 rows): size, mtime and inode alone would miss a same-size rewrite within one timestamp tick. A file that
only grew (results.tsv is append-only) reuses the entry for its unchanged prefix; anything else is parsed again.
Any problem with the cache is a miss."""

from __future__ import annotations

import marshal
import os
import zlib
from pathlib import Path
from typing import Any

_VERSION = 1
Rows = list[dict[str, Any]]


def cache_file(path: Path) -> Path | None:
    """Where the history of results file `path` is cached, or None where arl must not write."""
    if os.environ.get("ARL_CONTROL"):  # inside the sandbox: the history there is a read-only copy
        return None
    state = path.parent / ".arl"
    try:
        st = os.lstat(state)
    except OSError:
        return None
    if not os.path.isdir(state) or os.path.islink(state) or st.st_uid != os.getuid():
        return None
    return state / "cache" / f"{path.name}.marshal"


def load(cache: Path, data: bytes, schema: str) -> tuple[int, Rows]:
    """(characters of the text the cached rows were parsed from, those rows) when `data`, the bytes of the results
    file just read, equals or extends what the entry was built from, and the rows were made by a reader of the same
    `schema` (the columns: another arl's rows have other keys); (0, []) otherwise."""
    try:
        version, kind, nbytes, crc, nchars, rows = marshal.loads(cache.read_bytes())
        if (version, kind) != (_VERSION, schema) or not isinstance(rows, list) or not 0 < nbytes <= len(data):
            return 0, []
        if data[nbytes - 1 : nbytes] != b"\n" or zlib.crc32(memoryview(data)[:nbytes]) != crc:
            return 0, []
        return int(nchars), rows
    except (OSError, ValueError, EOFError, TypeError):
        return 0, []


def store(cache: Path, data: bytes, schema: str, nchars: int, rows: Rows) -> None:
    """Write the entry atomically (a temporary file renamed), so a reader sees an old entry or a new one."""
    try:
        payload = marshal.dumps((_VERSION, schema, len(data), zlib.crc32(data), nchars, rows))
        cache.parent.mkdir(exist_ok=True)
        import tempfile  # only to write: most reads find the entry current

        fd, tmp = tempfile.mkstemp(dir=cache.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(payload)
            os.replace(tmp, cache)
        except BaseException:
            os.unlink(tmp)
            raise
    except (OSError, ValueError):  # a cache that cannot be written is no cache; values marshal cannot hold too
        pass
