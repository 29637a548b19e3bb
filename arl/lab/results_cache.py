"""The parsed history on disk, `.arl/cache/<results file>.marshal`: a command that reads a long results.tsv once
(`arl results`, `arl status`, a step of `make research`) loads its rows instead of parsing every line.

Only beside a host-owned `.arl` folder (never in the sandbox, never in a folder another user owns). An entry holds
the size and a CRC of the bytes it was built from, and is checked against the bytes just read (about a millisecond
for 10,000 rows): size, mtime and inode alone would miss a same-size rewrite within one timestamp tick. A file that
only grew (results.tsv is append-only) reuses the entry for its unchanged prefix; anything else is parsed again.
The rows are kept in blocks of BLOCK rows, each marshalled on its own, so that `arl results --last 20` loads one or
two blocks, not 10,000 rows; and each row is kept as `arl results --format json` prints it, so that the whole history
in JSON is a join of strings. Any problem with the cache is a miss."""

from __future__ import annotations

import json
import marshal
import os
import zlib
from pathlib import Path

TYPE_CHECKING = False  # typing itself costs milliseconds to import: only the type checker reads these
if TYPE_CHECKING:
    from typing import Any

    from arl.lab.runstate import Row

    Rows = list[Row]

_VERSION = 2
BLOCK = 500


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


class Entry:
    """A cache entry that matched the file: how much of it it covers, and its rows and their JSON texts, both in
    blocks of BLOCK rows."""

    def __init__(self, nbytes: int, nchars: int, count: int, blocks: list[bytes], texts: list[bytes]) -> None:
        self.nbytes, self.nchars, self.count, self.blocks, self.text_blocks = nbytes, nchars, count, blocks, texts

    def rows(self, last: int | None = None) -> Rows:
        """Every row, or only the last `last` of them (fewer when there are fewer)."""
        return self._take(self.blocks, last)

    def texts(self, last: int | None = None) -> list[str]:
        """The JSON texts of every row, or of the last `last`."""
        return self._take(self.text_blocks, last)

    def _take(self, blocks: list[bytes], last: int | None) -> list[Any]:
        if last is not None:
            blocks = blocks[max(self.count - last, 0) // BLOCK :]  # not the whole blocks before the first one wanted
        out: list[Any] = []
        for block in blocks:
            out.extend(marshal.loads(block))
        if last is None and len(out) != self.count:
            raise ValueError("a cache entry whose blocks do not match its count")
        return out if last is None else out[len(out) - min(last, len(out)) :]


def load(cache: Path, data: bytes, schema: str) -> Entry | None:
    """The entry when `data`, the bytes of the results file just read, equals or extends what it was built from,
    and its rows were made by a reader of the same `schema` (the columns: another arl's rows have other keys)."""
    try:
        version, kind, nbytes, crc, nchars, count, blocks, texts = marshal.loads(cache.read_bytes())
        if (version, kind) != (_VERSION, schema) or not 0 < nbytes <= len(data) or len(texts) != len(blocks):
            return None
        if data[nbytes - 1 : nbytes] != b"\n" or zlib.crc32(memoryview(data)[:nbytes]) != crc:
            return None
        return Entry(nbytes, nchars, count, blocks, texts)
    except (OSError, ValueError, EOFError, TypeError):
        return None


def store(cache: Path, data: bytes, schema: str, nchars: int, rows: Rows, previous: Entry | None = None) -> None:
    """The entry for `rows`, read from `data`. When they extend the rows of the `previous` entry (results.tsv only
    grows), its full blocks are kept as they are: an append costs a block, not the whole history."""
    kept = previous.count // BLOCK if previous is not None and previous.count <= len(rows) else 0
    starts = range(kept * BLOCK, len(rows), BLOCK)
    try:
        blocks = [marshal.dumps(rows[i : i + BLOCK]) for i in starts]
        # each row exactly as `arl results --format json` prints it
        texts = [marshal.dumps([json.dumps(r, default=str) for r in rows[i : i + BLOCK]]) for i in starts]
    except ValueError:  # values marshal cannot hold: no cache
        return
    if previous is not None and kept:
        blocks, texts = previous.blocks[:kept] + blocks, previous.text_blocks[:kept] + texts
    entry = (_VERSION, schema, len(data), zlib.crc32(data), nchars, len(rows), blocks, texts)
    write_atomic(cache, marshal.dumps(entry))


def write_atomic(cache: Path, payload: bytes) -> None:
    """A cache file written whole (a temporary file renamed), so a reader sees an old entry or a new one; a cache
    that cannot be written is no cache, never an error."""
    try:
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
    except OSError:
        pass
