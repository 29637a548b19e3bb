"""Malformed verdicts from inside the sandbox: each gets a "rejected" ack naming the problem; the loop goes on.

The attacker is tests/agents/corpus_agent.py, a command agent in the real sandbox; it writes acks.json into the
pipeline, which the snapshot of its one valid discard carries back out (refs/arl/curve-fit/experiments/1)."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import ROOT, arl, git
from .loophelpers import check_history, cleanup_containers, containers_of, rows, set_toml

pytestmark = pytest.mark.docker

FILE_NAME = ["file name", "verdict-<seq>.json"]
SYMLINK = ["symlink"]
NOT_REGULAR = ["not a regular file"]
SEQ_TYPE = ["seq must be an integer"]
SCORE = ["score must be a finite number"]

# case id -> keywords that the host's reason must contain (all of them), or a tuple of alternatives.
EXPECTED: dict[str, list[str] | tuple[list[str], ...]] = {
    "not_json": ["not valid JSON"],
    "empty_file": ["not valid JSON"],
    "truncated": ["not valid JSON"],
    "trailing_garbage": ["not valid JSON", "Extra data"],
    "huge": ["bytes", "limit"],
    "binary": ["not UTF-8"],
    "binary_nul_utf8": ["not valid JSON"],
    "latin1": ["not UTF-8"],
    "utf16": ["not UTF-8"],
    "utf8_bom": ["not valid JSON", "BOM"],
    "top_level_array": ["must be a JSON object", "array"],
    "top_level_string": ["must be a JSON object", "string"],
    "top_level_null": ["must be a JSON object", "null"],
    "empty_object": ["lacks seq, action"],
    "missing_seq": ["lacks seq"],
    "missing_action": ["lacks action"],
    "seq_string": SEQ_TYPE,
    "seq_float": SEQ_TYPE,
    "seq_bool": SEQ_TYPE,
    "seq_null": SEQ_TYPE,
    "seq_infinite": SEQ_TYPE,
    "seq_5000_digits": ["not usable JSON"],
    "seq_400_digits": ["seq", "out of range"],
    "seq_negative": ["seq -1", "does not match the file name"],
    "seq_not_filename": ["does not match the file name"],
    "replayed_seq": ["replayed"],
    "skipped_seq": ["skips ahead"],
    "huge_seq": (["out of range"], ["skips ahead"]),
    "action_unknown": ["action must be", "'merge'"],
    "action_uppercase": ["action must be", "'KEEP'"],
    "action_number": ["action must be", "a number"],
    "action_null": ["action must be", "null"],
    "action_deep_list": ["action must be", "an array"],
    "notes_number": ["notes must be a string"],
    "notes_object": ["notes must be a string"],
    "notes_nul": ["notes", "NUL"],
    "notes_lone_surrogate": ["notes", "surrogate"],
    "score_string": SCORE,
    "score_bool": SCORE,
    "score_nan": SCORE,
    "score_infinity": SCORE,
    "score_huge_int": SCORE,
    "metrics_list": ["metrics must be a JSON object"],
    "metrics_string": ["metrics must be a JSON object"],
    "metrics_nan": ["metrics", "NaN"],
    "metrics_deep": ["metrics", "nested too deeply"],
    "hash_number": ["tree must be a string"],
    "keep_without_eval": ["pipeline changed", "arl eval"],
    "keep_forged_hash": ["pipeline changed"],
    "stale_pipeline_hash": ["pipeline changed", "arl eval"],
    "deeply_nested": ["nested too deeply"],
    "symlink_etc_passwd": SYMLINK,
    "symlink_host_path": SYMLINK,
    "symlink_relative": SYMLINK,
    "symlink_dangling": SYMLINK,
    "directory": NOT_REGULAR,
    "fifo": NOT_REGULAR,
    "name_letters": FILE_NAME,
    "name_empty_tag": FILE_NAME,
    "name_spaces": FILE_NAME,
    "name_leading_zero": FILE_NAME,
    "name_superscript_digit": FILE_NAME,
    "name_arabic_digit": FILE_NAME,
    "name_negative": FILE_NAME,
    "name_too_long": FILE_NAME,
    # As root the host can read a mode-000 file (and finds it is not JSON); as a user it cannot open it.
    "unreadable_mode_000": (["cannot be read"], ["not valid JSON"]),
    "ack_path_is_directory": ["not valid JSON"],
    "ack_path_is_symlink": ["notes must be a string"],
    "flood": FILE_NAME,
}
# The ack names the host must use: the part of the file name between `verdict-` and `.json`, or "invalid".
TAGS = {
    "name_letters": "abc",
    "name_empty_tag": "invalid",
    "name_spaces": "invalid",
    "name_leading_zero": "01",
    "name_superscript_digit": "invalid",
    "name_arabic_digit": "invalid",
    "name_negative": "-1",
    "name_too_long": "invalid",
    "replayed_seq": "0",
    "skipped_seq": "2",
}


NAME = f"curve-fit-{os.urandom(3).hex()}"


@pytest.fixture
def corpus_lab(example_lab: Path, base_image: str) -> Iterator[Path]:
    lab = example_lab
    shutil.copy(ROOT / "tests" / "agents" / "corpus_agent.py", lab / "corpus_agent.py")
    # Host paths an attacker would guess, handed to the agent beside the backend (mounted read-only).
    (lab / "corpus_paths.py").write_text(f"PATHS = {json.dumps({'lab_toml': str((lab / 'lab.toml').resolve())})}\n")
    set_toml(lab, "agent", "command", ["python3", "-u", "/workspace/lab/corpus_agent.py"])
    # A name of its own: container names derive from the lab's name, and other labs may run on this engine.
    set_toml(lab, "lab", "name", NAME)
    git(lab, "add", "-A")
    git(lab, "commit", "-qm", "corpus agent")
    yield lab
    cleanup_containers(lab)


def _matches(reason: str, want: list[str] | tuple[list[str], ...]) -> bool:
    options = want if isinstance(want, tuple) else (want,)
    return any(all(k in reason for k in option) for option in options)


def test_malformed_verdicts_are_rejected_and_the_loop_goes_on(corpus_lab: Path) -> None:
    lab = corpus_lab
    toml_before = (lab / "lab.toml").read_bytes()
    proc = arl(
        "run", "--data", "data", "--agent", "command", "--max-iterations", "1", "--plateau-threshold", "0",
        "--iteration-timeout", "600", "--max-restarts", "0",
        cwd=lab, check=False, timeout=600, env={"ARL_BASE_FROM": "debootstrap"},
    )  # fmt: skip
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-4000:]
    assert "stop: max_iterations" in proc.stdout, log[-4000:]
    assert "Traceback" not in log

    # Exactly one experiment: the valid discard that followed the corpus.
    rs = check_history(lab, NAME)
    assert [r["outcome"] for r in rs] == ["baseline", "discard"], [(r["outcome"], r["notes"]) for r in rs]
    assert rs[1]["notes"] == "corpus done"
    assert json.loads(rs[1]["metrics"])["verdict_seq"] == 1

    acks = json.loads(git(lab, "show", f"refs/arl/{NAME}/experiments/1:pipeline/acks.json"))
    assert acks.pop("_expected_seq") == 1
    assert acks.pop("_expected_after") == 1, "a rejected verdict must not advance the sequence"
    assert sorted(acks) == sorted(EXPECTED), set(acks) ^ set(EXPECTED)
    assert len(EXPECTED) >= 30
    problems = []
    for case, want in EXPECTED.items():
        answers = acks[case]
        if case == "flood":
            assert len(answers) == 30
        for a in answers:
            reason = str(a.get("reason", ""))
            if a.get("outcome") != "rejected" or not _matches(reason, want):
                problems.append(f"{case}: outcome {a.get('outcome')!r}, reason {reason!r}, wanted {want}")
            if case in TAGS and a["tag"] != TAGS[case]:
                problems.append(f"{case}: answered as ack-{a['tag']}.json, wanted ack-{TAGS[case]}.json")
    assert not problems, "\n".join(problems)

    # The host wrote nothing through the agent's links and left nothing of the attack in the channel.
    assert (lab / "lab.toml").read_bytes() == toml_before
    control = lab / ".arl" / "control"
    assert not [p.name for p in control.iterdir() if p.name.startswith("verdict-")]
    assert (control / "ack-1.json").is_file() and not (control / "ack-1.json").is_symlink()
    archived = {p.name.split(".json")[0] + ".json" for p in (lab / ".arl" / "verdicts").iterdir()}
    assert "verdict-1.json" in archived
    # Verdicts for any other seq are answered, then removed (not archived): a flood cannot grow the host's disk.
    assert not {"verdict-abc.json", "verdict-flood29.json"} & archived
    assert not containers_of(lab)
    status = json.loads(arl("status", "--json", cwd=lab).stdout)
    assert status["active"] is False and status["experiment"] == 1
    assert len(rows(lab)) == 2


def test_the_hosts_files_in_the_channel_replaced_by_a_directory(corpus_lab: Path) -> None:
    lab = corpus_lab
    set_toml(lab, "agent", "command", ["python3", "-u", "/workspace/lab/corpus_agent.py", "expected-as-directory"])
    git(lab, "commit", "-qam", "expected.json attack")
    proc = arl(
        "run", "--data", "data", "--agent", "command", "--max-iterations", "2", "--plateau-threshold", "0",
        "--iteration-timeout", "120", "--max-restarts", "0",
        cwd=lab, check=False, timeout=300, env={"ARL_BASE_FROM": "debootstrap", "ARL_QUIET": "1"},
    )  # fmt: skip
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0 and "stop: max_iterations" in proc.stdout, log[-3000:]
    rs = check_history(lab, NAME)
    assert [(r["outcome"], r["notes"]) for r in rs[1:]] == [("discard", "first"), ("discard", "second")]
    assert not containers_of(lab)
