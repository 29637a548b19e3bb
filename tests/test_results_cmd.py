"""`arl results`: the history as table, TSV, JSON and Markdown; --run, --last, --best (--all-runs still accepted)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest

from arl.history import results
from tests.conftest import arl
from tests.test_config import one_line_error, write_lab


def row(id: int, run: int, outcome: str, score: float | None, **kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": id, "run": run, "time": f"2024-05-01T10:{id:02d}:00Z", "outcome": outcome, "score": score,
        "verified_score": None, "holdout_score": None, "best": None, "cost_usd": None, "commit": None,
        "agent": "offline", "notes": f"note {id}", "metrics": {},
    }  # fmt: skip
    base.update(kw)
    return base


HISTORY = [
    row(0, 1, "baseline", 3.0, verified_score=3.0, best=3.0, commit="a" * 40, agent=None, notes=""),
    row(1, 1, "keep", 2.5, verified_score=2.4, best=2.4, cost_usd=0.01, commit="b" * 40,
        notes="tab\there\nand a newline", metrics={"worst_mae": 3.1, "n": 8}),
    row(2, 1, "discard", 2.9, best=2.4, cost_usd=0.02, notes="a | b"),
    row(3, 2, "crash", None, best=2.4, notes="container died"),
    row(4, 2, "keep", 2.2, verified_score=2.1, holdout_score=2.6, best=2.1, cost_usd=0.015, commit="c" * 40),
    row(5, 2, "vetoed", 1.0, verified_score=1.9, best=2.1),
    row(6, 2, "keep", 2.15, verified_score=2.12, best=2.1, commit="d" * 40),
    row(7, 2, "interrupted", None, best=2.1),
]  # fmt: skip


@pytest.fixture
def plain_lab(tmp_path: Path) -> Path:
    """A lab without git (the results command needs none): faster than the example."""
    return write_lab(tmp_path / "lab")


@pytest.fixture
def history_lab(plain_lab: Path) -> Path:
    for r in HISTORY:
        results.append(plain_lab / "results.tsv", r)
    return plain_lab


def _json(lab: Path, *args: str) -> list[dict[str, Any]]:
    return json.loads(arl("results", "--format", "json", *args, cwd=lab).stdout)


def test_header_only_history(example_lab: Path) -> None:
    proc = arl("results", cwd=example_lab)
    assert proc.stderr == ""
    assert proc.stdout.split()[:3] == ["id", "time", "outcome"]
    assert "no experiments yet" in proc.stdout
    assert _json(example_lab) == []
    assert arl("results", "--format", "tsv", cwd=example_lab).stdout == results.header_line()
    md = arl("results", "--format", "markdown", cwd=example_lab).stdout
    assert [c.strip() for c in md.splitlines()[0].split("|")][1:3] == ["id", "time"]
    assert _json(example_lab, "--best") == []


def test_json_has_exactly_the_columns_with_types(history_lab: Path) -> None:
    rows = _json(history_lab, "--all-runs")
    assert [r["id"] for r in rows] == list(range(8))
    for r in rows:
        assert list(r) == results.COLUMNS
    assert rows[1]["score"] == 2.5 and rows[1]["verified_score"] == 2.4 and isinstance(rows[1]["run"], int)
    assert rows[1]["notes"] == "tab\there\nand a newline"
    assert rows[1]["metrics"] == {"worst_mae": 3.1, "n": 8}
    assert rows[3]["score"] is None and rows[3]["commit"] is None and rows[3]["cost_usd"] is None
    assert rows[4]["holdout_score"] == 2.6
    assert rows[0]["time"] == "2024-05-01T10:00:00Z"


def test_tsv_is_the_file_format(history_lab: Path) -> None:
    text = arl("results", "--format", "tsv", "--all-runs", cwd=history_lab).stdout
    assert text == (history_lab / "results.tsv").read_text()
    parsed = list(csv.reader(io.StringIO(text), delimiter="\t"))
    assert parsed[0] == results.COLUMNS
    assert all(len(r) == len(results.COLUMNS) for r in parsed)
    assert parsed[2][results.COLUMNS.index("notes")] == "tab\\there\\nand a newline"  # escaped in the file


def test_csv_as_autoresearch_lab_spelled_it_and_json_both_ways(history_lab: Path) -> None:
    before = (history_lab / "results.tsv").read_bytes()
    text = arl("results", "--format", "csv", cwd=history_lab).stdout
    parsed = list(csv.DictReader(io.StringIO(text)))
    assert list(parsed[0]) == results.COLUMNS and len(parsed) == len(_json(history_lab))
    assert parsed[1]["notes"] == "tab\there\nand a newline"  # csv quotes it: nothing to escape
    assert json.loads(parsed[1]["metrics"]) == _json(history_lab)[1]["metrics"]
    assert (
        arl("results", "--json", cwd=history_lab).stdout == arl("results", "--format", "json", cwd=history_lab).stdout
    )
    assert (history_lab / "results.tsv").read_bytes() == before


def test_default_shows_the_whole_history_and_run_narrows_it(history_lab: Path) -> None:
    assert [r["id"] for r in _json(history_lab)] == list(range(8))
    assert [r["id"] for r in _json(history_lab, "--all-runs")] == list(range(8))  # what scripts passed before
    assert [r["id"] for r in _json(history_lab, "--run", "2")] == [0, 3, 4, 5, 6, 7]  # with the baseline
    assert [r["id"] for r in _json(history_lab, "--run", "1", "--last", "2")] == [1, 2]
    assert _json(history_lab, "--run", "9") == [_json(history_lab)[0]]
    assert len(arl("results", cwd=history_lab).stdout.splitlines()) == 2 + len(HISTORY)


def test_last(history_lab: Path) -> None:
    assert [r["id"] for r in _json(history_lab, "--all-runs", "--last", "3")] == [5, 6, 7]
    assert [r["id"] for r in _json(history_lab, "--all-runs", "--last", "100")] == list(range(8))
    table = arl("results", "--last", "2", cwd=history_lab).stdout
    assert "interrupted" in table and "vetoed" not in table


def test_best_is_the_best_kept_one(history_lab: Path) -> None:
    # the vetoed 1.0 and the baseline do not count; among the keeps, the verified score decides (2.1 < 2.12)
    best = _json(history_lab, "--best")
    assert [r["id"] for r in best] == [4]
    table = arl("results", "--best", cwd=history_lab).stdout.splitlines()
    assert len(table) == 3 and table[2].split()[0] == "4"


def test_best_follows_the_direction(plain_lab: Path) -> None:
    lab_toml = plain_lab / "lab.toml"
    lab_toml.write_text(lab_toml.read_text().replace('name = "t"', 'name = "t"\ndirection = "maximize"'))
    for r in HISTORY:
        results.append(plain_lab / "results.tsv", r)
    assert [r["id"] for r in _json(plain_lab, "--best")] == [1]


def test_best_when_nothing_was_kept(plain_lab: Path) -> None:
    for r in HISTORY[:3]:
        if r["outcome"] != "keep":
            results.append(plain_lab / "results.tsv", r)
    assert _json(plain_lab, "--best") == []


def test_table_and_markdown(history_lab: Path) -> None:
    table = arl("results", "--all-runs", cwd=history_lab).stdout
    lines = table.splitlines()
    header = lines[0].split()
    assert header == ["id", "time", "outcome", "score", "verified_score", "holdout_score", "best", "cost_usd", "notes"]
    assert len(lines) == 2 + len(HISTORY)
    assert "2024-05-01 10:01:00" in table and "tab here and a newline" in table and "\t" not in table
    md = arl("results", "--format", "markdown", "--all-runs", cwd=history_lab).stdout.splitlines()
    assert [c.strip() for c in md[0].split("|")][1:3] == ["id", "time"] and set(md[1]) <= set("|-: ")
    assert len(md) == 2 + len(HISTORY)
    cells = len(md[0].split("|"))
    # every line has as many cells as the header: the | in a note is escaped
    assert all(line.startswith("|") and line.endswith("|") for line in md)
    assert all(len(line.replace("\\|", "").split("|")) == cells for line in md)
    assert "a \\| b" in "\n".join(md)


def test_holdout_column_only_when_there_is_one(plain_lab: Path) -> None:
    results.append(plain_lab / "results.tsv", HISTORY[0])
    assert "holdout_score" not in arl("results", cwd=plain_lab).stdout
    results.append(plain_lab / "results.tsv", HISTORY[4])
    assert "holdout_score" in arl("results", "--all-runs", cwd=plain_lab).stdout


def test_a_broken_results_file_is_a_clear_error(plain_lab: Path) -> None:
    (plain_lab / "results.tsv").write_text("id\tscore\n1\t2\n")
    one_line_error(arl("results", cwd=plain_lab, check=False), "results.tsv", "header")
    (plain_lab / "results.tsv").write_text(results.header_line() + "x\t1\n1\t2\n")
    one_line_error(arl("results", cwd=plain_lab, check=False), "line 2", "columns")


def test_a_missing_results_file_is_an_empty_history(plain_lab: Path) -> None:
    assert not (plain_lab / "results.tsv").exists()
    assert _json(plain_lab) == []


def test_a_torn_last_line_is_ignored(history_lab: Path) -> None:
    path = history_lab / "results.tsv"
    path.write_text(path.read_text() + "8\t2\t2024-05-01T")
    assert [r["id"] for r in _json(history_lab, "--all-runs")] == list(range(8))


def test_a_runs_cost_outside_its_rows_is_shown(history_lab: Path) -> None:
    """Sessions that ended without a verdict cost money that no row carries: the table says how much, per run."""
    (history_lab / ".arl").mkdir(exist_ok=True)
    events = [{"event": "end", "run": 1, "reason": "max_cost", "cost": 0.05}, {"event": "end", "run": 2, "cost": 0.015}]
    (history_lab / ".arl" / "runs.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    out = arl("results", cwd=history_lab).stdout
    assert "run 1: $0.0500 spent in all, $0.0200 of it in no experiment's row" in out  # rows hold 0.01 + 0.02
    assert "run 2:" not in out  # its rows hold all it spent
    # the end of the history alone is all that `--last N` reads: a run's cost needs all its rows
    assert "spent in all" not in arl("results", "--last", "2", cwd=history_lab).stdout
    assert "run 1: $0.0500 spent in all" in arl("results", "--run", "1", cwd=history_lab).stdout
    assert "spent in all" not in arl("results", "--format", "markdown", cwd=history_lab).stdout
    assert isinstance(_json(history_lab), list)  # scripts' formats stay exactly the history
