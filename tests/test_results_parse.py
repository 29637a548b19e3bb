"""results.tsv read by position, with the precise csv parser behind it: the same rows and the same errors for any
file; the last rows read from the file's end; the in-process memo that never serves stale rows."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from arl.errors import ArlError
from arl.history import results
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


def test_the_memo_reuses_an_unchanged_prefix_and_never_serves_stale_rows(tmp_path: Path) -> None:
    path = _lab_file(tmp_path, TRICKY)
    results.read(path)
    results.append(path, _row(5))
    assert [r["id"] for r in results.read(path).rows] == [0, 1, 2, 3, 4, 5]
    # the same size, rewritten in place within the same second: the content decides, not the timestamps
    stat = path.stat()
    path.write_text(path.read_text().replace("note 5", "note 6"))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert path.stat().st_size == stat.st_size
    assert results.read(path).rows[-1]["notes"] == "note 6"
    assert _same(results.read(path).rows, _precise(path))


@pytest.mark.parametrize("last", [None, 1, 2, 499, 500, 501, 700, 1203, 5000])
def test_the_last_rows_read_from_the_end_equal_a_full_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, last: int | None
) -> None:
    monkeypatch.setattr(results, "TAIL_BLOCK", 4096)  # many blocks read backwards, lines cut across them
    many = [_row(i, notes=f"row {i}") for i in range(1203)]
    path = _lab_file(tmp_path, many)
    full = _fresh_read(path)
    results._parsed.clear()
    want = full if last is None else full[-last:]
    assert _same(results.read_last(path, last), want)
    assert not results._parsed or last is None  # a few rows: the file was not read whole


@pytest.mark.parametrize(
    "tail",
    [
        "8\t2\t2024-05-01T",  # a torn last line: ignored, as a full read ignores it
        "\n",  # a blank line
        '9\t1\t"2024"x\tdiscard\t\t\t\t\t\t\t\t\t{}\t0\n',  # a line csv reads its own way
    ],
)
def test_odd_ends_are_read_as_a_full_read_reads_them(tmp_path: Path, tail: str) -> None:
    path = _lab_file(tmp_path, [_row(i) for i in range(8)])
    path.write_text(path.read_text() + tail)
    full = _fresh_read(path)
    results._parsed.clear()
    assert _same(results.read_last(path, 3), full[-3:])


def test_the_last_rows_of_an_old_or_foreign_file_are_a_full_reads(tmp_path: Path) -> None:
    path = tmp_path / "results.tsv"
    old = results.OLD_COLUMNS
    path.write_text(
        "\t".join(old) + "\n" + "".join(results.format_row(_row(i)).rsplit("\t", 1)[0] + "\n" for i in range(5))
    )
    assert [r["id"] for r in results.read_last(path, 2)] == [3, 4]
    assert results.read_last(tmp_path / "missing.tsv", 2) == []


def test_results_output_is_the_same_for_the_whole_history_and_its_end(tmp_path: Path) -> None:
    from tests.test_config import write_lab

    lab = write_lab(tmp_path / "lab")
    (lab / "results.tsv").write_text(HEADER + "".join(results.format_row(r) for r in TRICKY))
    for f in ("json", "tsv", "table", "markdown"):
        whole = arl("results", "--format", f, cwd=lab).stdout
        assert arl("results", "--format", f, "--last", "99", cwd=lab).stdout == whole
