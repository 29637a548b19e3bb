"""results.tsv read by position, with the precise csv parser behind it: the same rows and the same errors for any
file, and the parsed-history cache under `.arl/cache/` that never serves stale rows."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from arl.errors import ArlError
from arl.lab import results
from tests.conftest import arl

HEADER = results.header_line()


def _row(i: int, **kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": i, "run": 1, "time": "2024-05-01T10:00:00Z", "outcome": "discard", "score": 1.5 + i,
        "verified_score": None, "holdout_score": None, "best": 1.0, "cost_usd": 0.25, "commit": "f" * 40,
        "agent": "offline", "notes": f"note {i}", "metrics": {"x": i},
    }  # fmt: skip
    base.update(kw)
    return base


TRICKY = [
    _row(0, outcome="baseline", notes="", metrics={}),
    _row(1, notes='she said "keep" \\ then \t tab and\nnewline', metrics={"q": 'a"b', "u": "é ☃", "n": [1, None]}),
    _row(2, score=None, best=None, cost_usd=None, commit=None, agent=None, notes='"quoted at both ends"'),
    _row(3, score=float("nan"), verified_score=-0.0, holdout_score=1e-300, metrics={"nested": {"k": {"v": 1}}}),
    _row(4, notes="a | b, c; d"),
]


def _precise(path: Path) -> list[dict[str, Any]]:
    """What the csv module reads: the reference the fast path must equal."""
    text = path.read_text()
    return results._parse_precisely(path, text, text[text.index("\n") + 1 :], 2)


def _fresh_read(path: Path) -> list[dict[str, Any]]:
    results._parsed.clear()  # the in-process memo would answer otherwise
    return results.read(path).rows


def _same(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> bool:
    return json.dumps(a) == json.dumps(b)  # NaN-safe equality, key order included


def test_rows_read_by_position_equal_the_csv_parsers(tmp_path: Path) -> None:
    path = tmp_path / "results.tsv"
    path.write_text(HEADER + "".join(results.format_row(r) for r in TRICKY))
    body = path.read_text().split("\n", 1)[1]
    assert results.results_fast.by_position(body, results.unescape) is not None  # the fast path did the work
    rows = _fresh_read(path)
    assert _same(rows, _precise(path))
    assert [list(r) for r in rows] == [results.COLUMNS] * len(TRICKY)
    assert rows[1]["notes"] == TRICKY[1]["notes"] and rows[1]["metrics"] == TRICKY[1]["metrics"]


@pytest.mark.parametrize(
    "line",
    [
        '5\t1\tt\tdiscard\t1\t\t\t\t\t\t\tab"c\t{}\n',  # a quote inside an unquoted cell is text
        '5\t1\tt\tdiscard\t1\t\t\t\t\t\t\t"ab"cd\t{}\n',  # csv's reading of text after a closing quote
        '5\t1\tt\tdiscard\t1\t\t\t\t\t\t\t""\t{}\n',
        '5\t1\tt\tdiscard\t1\t\t\t\t\t\t\t"a\tb"\t{}\n',  # a quoted tab: one cell for csv
        '5\t1\tt\tdiscard\t1\t\t\t\t\t\t\t"two\nlines"\t{}\n',  # a quoted newline: one record for csv
        "5\t1\tt\tdiscard\t1\t\t\t\t\t\t\tnote\t {} \n",  # JSON with spaces around it
        "5\t1\tt\tdiscard\t 7 \t\t\t\t\t\t\tnote\t{}\n",  # a number with spaces: float() takes it
        "\n5\t1\tt\tdiscard\t1\t\t\t\t\t\t\tnote\t{}\n\n",  # blank lines
        "5\t1\tt\tdiscard\t1\t\t\t\t\t\t\tnote\t{}\r\n",  # a CRLF line end
        "5\t1\tt\tdiscard\t1\t\t\t\t\t\t\tnote\t{}\n6\t1\tt\tdis",  # a torn last line
    ],
)
def test_odd_but_readable_lines_read_as_csv_reads_them(tmp_path: Path, line: str) -> None:
    path = tmp_path / "results.tsv"
    path.write_bytes((HEADER + results.format_row(TRICKY[1]) + line).encode())
    assert _same(_fresh_read(path), _precise(path))


@pytest.mark.parametrize(
    ("line", "error"),
    [
        ("x\t1\tt\tdiscard\t1\t\t\t\t\t\t\tn\t{}\n", "line 3: column 'id' has an unreadable value 'x'"),
        ("5\t1\tt\tdiscard\tabc\t\t\t\t\t\t\tn\t{}\n", "line 3: column 'score' has an unreadable value 'abc'"),
        ("5\t1\tt\tdiscard\t1\t\t\t\t\t\t\tn\t{oops\n", "line 3: column 'metrics' has an unreadable value '{oops'"),
        ("5\t1\tt\tdiscard\n6\t1\tt\tdiscard\t1\t\t\t\t\t\t\tn\t{}\n", "line 3 has 4 columns, expected 14"),
    ],
)
def test_a_bad_cell_gives_the_precise_parsers_error(tmp_path: Path, line: str, error: str) -> None:
    path = tmp_path / "results.tsv"
    path.write_text(HEADER + results.format_row(TRICKY[1]) + line)
    with pytest.raises(ArlError) as caught:
        _fresh_read(path)
    assert str(caught.value) == f"{path}: {error}"


def _lab_file(tmp_path: Path, rows: list[dict[str, Any]]) -> Path:
    (tmp_path / ".arl").mkdir()
    path = tmp_path / "results.tsv"
    path.write_text(HEADER + "".join(results.format_row(r) for r in rows))
    return path


def test_the_cache_is_written_reused_extended_and_never_stale(tmp_path: Path) -> None:
    path = _lab_file(tmp_path, TRICKY)
    cache = tmp_path / ".arl" / "cache" / "results.tsv.marshal"
    first = _fresh_read(path)
    assert cache.is_file()
    entry = results.results_cache.load(cache, path.read_bytes(), HEADER)
    assert entry is not None and entry.nchars == len(path.read_text()) and _same(entry.rows(), first)
    nchars, rows = entry.nchars, entry.rows()
    # another process's first read is served by the cache (marked here, to see that it is what answers)
    results.results_cache.store(cache, path.read_bytes(), HEADER, nchars, [{**r, "agent": "from-cache"} for r in rows])
    assert {r["agent"] for r in _fresh_read(path)} == {"from-cache"}
    # appended rows: the cached prefix is reused, the new line parsed
    results.append(path, _row(5))
    assert [r["id"] for r in _fresh_read(path)] == [0, 1, 2, 3, 4, 5]
    # the same size, rewritten in place within the same second: the content decides, not the timestamps
    stat = path.stat()
    text = path.read_text().replace("note 5", "note 6")
    path.write_text(text)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert path.stat().st_size == stat.st_size
    assert _fresh_read(path)[-1]["notes"] == "note 6"
    # a damaged cache is a miss, never an error
    cache.write_bytes(b"\x00garbage")
    assert _same(_fresh_read(path), _precise(path))


def test_no_cache_without_an_arl_folder_or_in_the_sandbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "results.tsv"
    path.write_text(HEADER + results.format_row(TRICKY[0]))
    _fresh_read(path)
    assert not (tmp_path / ".arl").exists()  # the cache never creates the state folder
    (tmp_path / ".arl").mkdir()
    monkeypatch.setenv("ARL_CONTROL", str(tmp_path / "control"))
    _fresh_read(path)
    assert not (tmp_path / ".arl" / "cache").exists()


def test_results_output_is_the_same_with_and_without_the_cache(tmp_path: Path) -> None:
    from tests.test_config import write_lab

    lab = write_lab(tmp_path / "lab")
    (lab / ".arl").mkdir(exist_ok=True)
    (lab / "results.tsv").write_text(HEADER + "".join(results.format_row(r) for r in TRICKY))
    outs = []
    for _ in range(2):  # the first run writes the cache, the second reads it
        outs.append([arl("results", "--format", f, cwd=lab).stdout for f in ("json", "tsv", "table", "markdown")])
    assert (lab / ".arl" / "cache" / "results.tsv.marshal").is_file()
    assert outs[0] == outs[1]


@pytest.mark.parametrize("last", [None, 1, 2, 499, 500, 501, 700, 1203, 5000])
def test_the_last_rows_from_the_cache_blocks_equal_a_full_read(tmp_path: Path, last: int | None) -> None:
    many = [_row(i, notes=f"row {i}") for i in range(1203)]  # three blocks, the last one short
    path = _lab_file(tmp_path, many)
    full = _fresh_read(path)  # parses, and writes the cache
    results._parsed.clear()  # another process: no memo, only the cache
    rows, texts = results.read_last(path, last, texts=True)
    want = full if last is None else full[-last:]
    assert texts is not None and _same(rows, want)
    assert "[" + ", ".join(texts) + "]" == json.dumps(want, default=str)
    # without a cache that matches the file: the rows of a full read, no texts
    with open(path, "a") as f:
        f.write(results.format_row(_row(1203)))
    results._parsed.clear()
    rows, texts = results.read_last(path, last, texts=True)
    assert texts is None and [r["id"] for r in rows] == [r["id"] for r in _fresh_read(path)][-(last or 0) :]


def test_an_append_rewrites_only_the_last_block(tmp_path: Path) -> None:
    path = _lab_file(tmp_path, [_row(i) for i in range(1100)])
    cache = tmp_path / ".arl" / "cache" / "results.tsv.marshal"
    _fresh_read(path)
    before = results.results_cache.load(cache, path.read_bytes(), HEADER)
    results.append(path, _row(1100))
    after_rows = _fresh_read(path)  # the cached 1,100 rows and the one new line
    assert _same(after_rows, _precise(path))
    after = results.results_cache.load(cache, path.read_bytes(), HEADER)
    assert before is not None and after is not None and after.count == 1101
    assert after.blocks[:2] == before.blocks[:2] and after.text_blocks[:2] == before.text_blocks[:2]
    assert after.blocks[2] != before.blocks[2]
    assert "[" + ", ".join(after.texts()) + "]" == json.dumps(after_rows, default=str)
