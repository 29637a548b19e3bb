"""Malformed verdicts from inside the sandbox: each gets a "rejected" ack naming the problem; the loop goes on.

The attacker is tests/agents/corpus_agent.py, a command agent in the real sandbox. After each case it holds still
while the test reads the ack files the host wrote, on the host (HostAcks): what the agent saw of them is not judged."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

import pytest

from .conftest import arl, git
from .loophelpers import check_history, containers_of, rows, run_arl, set_toml

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


# A name of its own: container names derive from the lab's name, and other labs may run on this engine.
CORPUS = ["python3", "-u", "/workspace/lab/corpus_agent.py"]
LAB = {"agents": ("corpus_agent.py",), "settings": {"agent": {"command": CORPUS}, "lab": {"name": NAME}}}
pytestmark = [pytest.mark.docker, pytest.mark.lab(**LAB)]


@pytest.fixture
def corpus_lab(lab: Path) -> Path:
    """The lab, with the host paths an attacker would guess handed to the agent beside the backend (read-only)."""
    (lab / "corpus_paths.py").write_text(f"PATHS = {json.dumps({'lab_toml': str((lab / 'lab.toml').resolve())})}\n")
    git(lab, "add", "corpus_paths.py")
    git(lab, "commit", "-qm", "corpus paths")
    return lab


class HostAcks:
    """The host's ack files of each case, read here on the host from the lab's control folder while the agent holds
    still: .hold-CASE in its workspace (the tags of the acks it waited for) says now; .release-CASE lets it go on."""

    def __init__(self, lab: Path) -> None:
        self.workspace, self.control = lab / ".arl" / "workspaces" / "0", lab / ".arl" / "control"
        self.seen: dict[str, list[tuple[str, dict[str, Any] | None]]] = {}
        self.error = ""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            try:
                for hold in sorted(self.workspace.glob(".hold-*")):
                    case = hold.name.removeprefix(".hold-")
                    if case.endswith(".tmp") or case in self.seen:
                        continue
                    self.seen[case] = [(tag, self.ack(tag)) for tag in json.loads(hold.read_text())]
                    tmp = self.workspace / f".release-{case}.tmp"
                    tmp.write_text("read\n")
                    tmp.rename(self.workspace / f".release-{case}")
            except (OSError, ValueError) as e:
                self.error = f"{type(e).__name__}: {e}"

    def ack(self, tag: str) -> dict[str, Any] | None:
        """ack-TAG.json as the host wrote it: a regular file of JSON (None when there is none)."""
        path = self.control / f"ack-{tag}.json"
        try:
            return json.loads(path.read_text()) if path.is_file() and not path.is_symlink() else None
        except (OSError, ValueError):
            return None

    def close(self) -> None:
        self._stop.set()
        self._thread.join(10)


def _matches(reason: str, want: list[str] | tuple[list[str], ...]) -> bool:
    options = want if isinstance(want, tuple) else (want,)
    return any(all(k in reason for k in option) for option in options)


def test_malformed_verdicts_are_rejected_and_the_loop_goes_on(corpus_lab: Path) -> None:
    lab = corpus_lab
    toml_before = (lab / "lab.toml").read_bytes()
    flags = ["--max-iterations", "1", "--plateau-threshold", "0", "--iteration-timeout", "600", "--max-restarts", "0"]
    host = HostAcks(lab)
    try:
        proc = run_arl(lab, *flags, agent="command", timeout=600)
    finally:
        host.close()
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-4000:]
    assert "stop: max_iterations" in proc.stdout, log[-4000:]
    assert "Traceback" not in log

    # Exactly one experiment: the valid discard that followed the corpus.
    rs = check_history(lab, NAME)
    assert [r["outcome"] for r in rs] == ["baseline", "discard"], [(r["outcome"], r["notes"]) for r in rs]
    assert rs[1]["notes"] == "corpus done"
    assert json.loads(rs[1]["metrics"])["verdict_seq"] == 1

    # (the discard's verdict_seq above: none of the rejected verdicts advanced the sequence)
    assert not host.error, host.error
    assert sorted(host.seen) == sorted(EXPECTED), set(host.seen) ^ set(EXPECTED)
    assert len(EXPECTED) >= 30
    problems = []
    for case, want in EXPECTED.items():
        answers = host.seen[case]
        if case == "flood":
            assert len(answers) == 30
        if not answers or (case in TAGS and [tag for tag, _ in answers] != [TAGS[case]]):
            problems.append(f"{case}: the agent waited for {[tag for tag, _ in answers]}, wanted {TAGS.get(case)}")
        for tag, a in answers:
            if a is None:
                problems.append(f"{case}: the host wrote no ack-{tag}.json")
                continue
            reason = str(a.get("reason", ""))
            if a.get("outcome") != "rejected" or not _matches(reason, want):
                problems.append(f"{case}: outcome {a.get('outcome')!r}, reason {reason!r}, wanted {want}")
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
    flags = ["--max-iterations", "2", "--plateau-threshold", "0", "--iteration-timeout", "120", "--max-restarts", "0"]
    proc = run_arl(lab, *flags, agent="command", env={"ARL_QUIET": "1"})
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0 and "stop: max_iterations" in proc.stdout, log[-3000:]
    rs = check_history(lab, NAME)
    assert [(r["outcome"], r["notes"]) for r in rs[1:]] == [("discard", "first"), ("discard", "second")]
    assert not containers_of(lab)
