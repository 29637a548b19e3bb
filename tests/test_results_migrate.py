"""A results.tsv begun with autoresearch-lab is converted once to arl's columns (the original kept, one line said),
then read by `arl results` and `arl plot` and continued by `arl run`."""

from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path

import pytest

from arl.history import results
from tests.conftest import arl, git, make_repo, run
from tests.loophelpers import run_arl
from tests.test_config import write_lab

# What autoresearch-lab 0.2.6 writes (harness/results.py: csv.writer with tabs, "%.6f" scores, yes/no, and the
# commit's sha or "reverted")
AR_HEADER = ["experiment_id", "timestamp", "score", "metrics", "kept", "commit_sha", "notes"]
AR_ROWS = [
    ["exp_001", "2026-03-01T10:00:00.123456+00:00", "2.500000", '{"mae": 2.5}', "yes", "a" * 40, "lower slope"],
    ["exp_002", "2026-03-01T10:05:00.000001+00:00", "2.900000", "{}", "no", "reverted", 'tab\there, "quoted"'],
    ["exp_003", "2026-03-01T11:00:00+02:00", "2.100000", '{"mae": 2.1, "n": 8}', "yes", "b" * 40, "wider"],
    ["exp_004", "2026-03-01T12:00:00+00:00", "2.300000", "{}", "no", "reverted", "line one\nline two"],
]


def ar_text(rows: list[list[str]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, delimiter="\t")  # its default line end, \r\n, as autoresearch-lab leaves it
    writer.writerow(AR_HEADER)
    writer.writerows(rows)
    return buf.getvalue()


@pytest.fixture
def ar_lab(tmp_path: Path) -> Path:
    lab = write_lab(tmp_path / "lab")
    (lab / "results.tsv").write_text(ar_text(AR_ROWS), newline="")
    return lab


def test_read_only_commands_read_it_as_it_is_and_a_run_converts_it_once(ar_lab: Path) -> None:
    original = (ar_lab / "results.tsv").read_bytes()
    proc = arl("results", "--format", "json", cwd=ar_lab)
    assert proc.stderr == ""
    assert (ar_lab / "results.tsv").read_bytes() == original  # `arl results` writes nothing
    assert not (ar_lab / "results.tsv.autoresearch-lab").exists()
    rows = json.loads(proc.stdout)
    assert [(r["id"], r["run"], r["outcome"], r["score"]) for r in rows] == [
        (1, 0, "keep", 2.5), (2, 0, "discard", 2.9), (3, 0, "keep", 2.1), (4, 0, "discard", 2.3)
    ]  # fmt: skip
    assert [r["best"] for r in rows] == [2.5, 2.5, 2.1, 2.1]
    assert [r["time"] for r in rows] == [
        "2026-03-01T10:00:00Z", "2026-03-01T10:05:00Z", "2026-03-01T09:00:00Z", "2026-03-01T12:00:00Z"
    ]  # fmt: skip
    assert rows[1]["notes"] == 'tab\there, "quoted"' and rows[3]["notes"] == "line one\nline two"
    assert rows[2]["metrics"] == {"mae": 2.1, "n": 8, "autoresearch_lab_id": "exp_003",
                                  "autoresearch_lab_commit": "b" * 40}  # fmt: skip
    assert "autoresearch_lab_commit" not in rows[1]["metrics"] and rows[1]["commit"] is None
    assert {r["agent"] for r in rows} == {"autoresearch-lab"}
    # a run, before it appends, converts it: once, the original kept beside it, one line said
    said = _ensure(ar_lab)
    assert "converted results.tsv from autoresearch-lab's format" in said and "4 experiments" in said, said
    assert "results.tsv.autoresearch-lab" in said
    assert (ar_lab / "results.tsv.autoresearch-lab").read_bytes() == original
    assert (ar_lab / "results.tsv").read_text().startswith(results.header_line())
    again = arl("results", "--format", "json", cwd=ar_lab)
    assert again.stderr == "" and json.loads(again.stdout) == rows
    assert _ensure(ar_lab) == "" and not (ar_lab / "results.tsv.autoresearch-lab.1").exists()


def _ensure(lab: Path) -> str:
    """What the host does before it appends a row (preflight), in its own process; returns its stderr."""
    path = str(lab / "results.tsv")
    code = f"from pathlib import Path; from arl.history import results as m; m.ensure_file(Path({path!r}))"
    return run([sys.executable, "-c", code], cwd=lab).stderr


def test_ids_that_are_not_exp_numbers_are_numbered_in_order(ar_lab: Path) -> None:
    odd = [["baseline-run", *AR_ROWS[0][1:]], ["exp_007", *AR_ROWS[1][1:]], ["exp_003", *AR_ROWS[2][1:]]]
    (ar_lab / "results.tsv").write_text(ar_text(odd), newline="")
    rows = json.loads(arl("results", "--format", "json", cwd=ar_lab).stdout)
    assert [r["id"] for r in rows] == [1, 2, 3]
    assert [r["metrics"]["autoresearch_lab_id"] for r in rows] == ["baseline-run", "exp_007", "exp_003"]


def test_a_broken_autoresearch_file_is_a_clear_error_and_left_alone(ar_lab: Path) -> None:
    bad = [AR_ROWS[0], ["exp_002", "2026-03-01T10:05:00+00:00", "oops", "{}", "no", "reverted", ""]]
    (ar_lab / "results.tsv").write_text(ar_text(bad), newline="")
    before = (ar_lab / "results.tsv").read_bytes()
    proc = arl("results", cwd=ar_lab, check=False)
    assert proc.returncode == 1 and "line 3" in proc.stderr and "'oops'" in proc.stderr, proc.stderr
    assert (ar_lab / "results.tsv").read_bytes() == before
    assert not (ar_lab / "results.tsv.autoresearch-lab").exists()


def test_a_history_that_cannot_be_rewritten_is_read_without_converting(ar_lab: Path) -> None:
    (ar_lab / ".results.tsv.converting").mkdir()  # where the converted file would be written first
    before = (ar_lab / "results.tsv").read_bytes()
    assert "could not convert" in _ensure(ar_lab)
    assert len(json.loads(arl("results", "--format", "json", cwd=ar_lab).stdout)) == 4
    assert (ar_lab / "results.tsv").read_bytes() == before
    assert not (ar_lab / "results.tsv.autoresearch-lab").exists()


def test_plot_reads_it(ar_lab: Path) -> None:
    pytest.importorskip("matplotlib")
    before = (ar_lab / "results.tsv").read_bytes()
    arl("plot", "-o", "progress.png", cwd=ar_lab)
    assert (ar_lab / "progress.png").stat().st_size > 0
    assert (ar_lab / "results.tsv").read_bytes() == before  # plotting converts nothing


@pytest.fixture
def ar_example(lab: Path) -> Path:
    (lab / "results.tsv").write_text(ar_text(AR_ROWS), newline="")
    git(lab, "commit", "-qam", "history from autoresearch-lab")
    return lab


@pytest.mark.docker
def test_arl_run_goes_on_from_it(ar_example: Path) -> None:
    flags = ["--plateau-threshold", "0", "--max-iterations", "2"]
    proc = run_arl(ar_example, *flags, seed=1, timeout=600, env={"ARL_QUIET": "1"})
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    assert "converted results.tsv from autoresearch-lab's format" in proc.stderr
    rows = results.read(ar_example / "results.tsv").rows
    assert [r["id"] for r in rows[:4]] == [1, 2, 3, 4] and {r["run"] for r in rows[:4]} == {0}
    later = rows[4:]
    assert later[0]["id"] == 0 and later[0]["outcome"] == "baseline" and later[0]["run"] == 1
    assert [r["id"] for r in later[1:]] == [5, 6] and {r["run"] for r in later[1:]} == {1}


def test_show_names_the_commit_autoresearch_lab_made(ar_lab: Path) -> None:
    make_repo(ar_lab)
    kept = arl("show", "1", cwd=ar_lab).stdout
    assert f"commit: {'a' * 40} (autoresearch-lab's; no arl ref)" in kept and "None" not in kept
    assert "(not in this repository)" in kept
    reverted = arl("show", "2", cwd=ar_lab).stdout
    assert "commit: none (not saved)" in reverted and "None" not in reverted
