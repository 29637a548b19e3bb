"""A command agent that attacks the verdict channel (run inside the sandbox by tests/test_verdict_corpus.py).

It puts malformed verdicts into /workspace/control the way a confused or hostile agent would, waits for the
host's ack of each (ack-<tag>.json, at most ACK_TIMEOUT), then holds still (.hold-<case> in the pipeline) until the
test has read the host's ack files on the host (.release-<case>), and ends with one valid `arl verdict discard`. What
it read of the acks is only printed: the test judges the files the host wrote.

Writes are atomic (temp file + rename) where the case is about the content, so that the reason the host gives
is about that content and not about a half-written file; the cases about the file itself (links, FIFOs,
directories) create it in place, as an attacker would."""

import json
import os
import pathlib
import re
import subprocess
import sys
import time

CONTROL = pathlib.Path(os.environ.get("ARL_CONTROL", "/workspace/control"))
PIPELINE = pathlib.Path(os.environ.get("ARL_PIPELINE", "/workspace/pipeline"))
LAB = pathlib.Path(os.environ.get("ARL_LAB", "/workspace/lab"))
ACK_TIMEOUT = 30.0
TAG = re.compile(r"^verdict-([A-Za-z0-9_.-]{1,40})\.json$")


def tag_of(name):
    m = TAG.match(name)
    return m.group(1) if m else "invalid"


def expected_seq():
    return int(json.loads((CONTROL / "expected.json").read_text())["seq"])


def host_paths():
    """The host's own paths, which the test writes beside the backend (an attacker would guess them)."""
    try:
        return json.loads((LAB / "corpus_paths.py").read_text().split("=", 1)[1])
    except (OSError, ValueError, IndexError):
        return {}


def remove(path):
    try:
        if path.is_dir() and not path.is_symlink():
            os.rmdir(path)
        else:
            path.unlink()
    except FileNotFoundError:
        pass


def put(name, data):
    tmp = CONTROL / f".verdict-{os.getpid()}.json.corpus00.tmp"  # a name the protocol defines: kept while written
    tmp.write_bytes(data if isinstance(data, bytes) else data.encode("utf-8"))
    os.replace(tmp, CONTROL / name)


def obj(**fields):
    return json.dumps(fields)


def raw(seq, tail, action=True):
    """JSON text written by hand, for what json.dumps will not write (NaN, lone surrogates, huge numbers)."""
    return '{"seq": ' + str(seq) + (', "action": "discard"' if action else "") + ", " + tail + "}"


def wait_ack(tag, timeout=ACK_TIMEOUT):
    path = CONTROL / f"ack-{tag}.json"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if path.is_file():
                return json.loads(path.read_text())
        except (OSError, ValueError):
            pass
        time.sleep(0.02)
    return {"outcome": "missing", "reason": f"no ack-{tag}.json within {timeout:g} s"}


def hold(case, tags, timeout=60):
    """Hold still while the test reads the host's acks of this case: .hold-CASE in the pipeline (the tags of the acks
    it waited for, as JSON) says now, and the test answers with .release-CASE there once it has read them."""
    tmp = PIPELINE / f".hold-{case}.tmp"
    tmp.write_text(json.dumps(tags))
    tmp.rename(PIPELINE / f".hold-{case}")
    release = PIPELINE / f".release-{case}"
    deadline = time.monotonic() + timeout
    while not release.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    for path in (PIPELINE / f".hold-{case}", release):
        remove(path)


def content_case(name, data):
    """A verdict file with the given name and bytes."""

    def go():
        put(name, data)
        return [tag_of(name)]

    return go


def in_place(name, make):
    """A file system object created right at the verdict's name (link, FIFO, directory)."""

    def go():
        make(CONTROL / name)
        return [tag_of(name)]

    return go


def stale_hash():
    """The honest path gone wrong: `arl eval`, then an edit, then `arl verdict keep`."""
    subprocess.run(["arl", "eval", "--json"], capture_output=True, check=False)
    model = PIPELINE / "model.py"
    model.write_text(model.read_text() + "\n# edited after the evaluation\n")
    subprocess.run(["arl", "verdict", "keep", "--notes", "stale"], capture_output=True, timeout=60, check=False)
    return [str(expected_seq())]


def ack_directory(e):
    """ack-<seq>.json made a directory before the verdict: the host must still be able to answer."""

    def go():
        (CONTROL / f"ack-{e}.json").mkdir()
        (CONTROL / f"ack-{e}.json" / "inside").write_text("x")
        put(f"verdict-{e}.json", "not json, and the ack path is a directory")
        return [str(e)]

    return go


def ack_symlink(e, target):
    """ack-<seq>.json made a symlink to a host file: the host must replace the link, never write through it."""

    def go():
        os.symlink(target, CONTROL / f"ack-{e}.json")
        put(f"verdict-{e}.json", obj(seq=e, action="discard", notes=5))
        return [str(e)]

    return go


def flood(count):
    """Many junk verdicts at once: each gets its own ack."""

    def go():
        names = [f"verdict-flood{i:02d}.json" for i in range(count)]
        for i, name in enumerate(names):
            put(name, f"junk {i}")
        return [tag_of(n) for n in names]

    return go


def unreadable(e):
    def go():
        put(f"verdict-{e}.json", "unreadable and not JSON")
        os.chmod(CONTROL / f"verdict-{e}.json", 0)
        return [str(e)]

    return go


def cases(e):
    """(case id, writer). The test holds the expected reason keywords of each case id."""
    host = host_paths()
    v = f"verdict-{e}.json"
    deep = "[" * 100000 + "]" * 100000
    return [
        ("not_json", content_case(v, "keep this one, please")),
        ("empty_file", content_case(v, b"")),
        ("truncated", content_case(v, obj(seq=e, action="discard", notes="cut")[:-12])),
        ("trailing_garbage", content_case(v, obj(seq=e, action="discard") + " and more")),
        ("huge", content_case(v, obj(seq=e, action="discard", notes="x" * (300 * 1024)))),
        ("binary", content_case(v, bytes(range(256)) * 8)),
        ("binary_nul_utf8", content_case(v, b'{"seq": 1\x00\x00, "action": "discard"}')),
        ("latin1", content_case(v, raw(e, '"notes": "caf\u00e9"').encode("latin-1"))),
        ("utf16", content_case(v, obj(seq=e, action="discard").encode("utf-16"))),
        ("utf8_bom", content_case(v, b"\xef\xbb\xbf" + obj(seq=e, action="discard").encode())),
        ("top_level_array", content_case(v, json.dumps([e, "discard"]))),
        ("top_level_string", content_case(v, json.dumps("discard"))),
        ("top_level_null", content_case(v, "null")),
        ("empty_object", content_case(v, "{}")),
        ("missing_seq", content_case(v, obj(action="discard"))),
        ("missing_action", content_case(v, obj(seq=e))),
        ("seq_string", content_case(v, obj(seq=str(e), action="discard"))),
        ("seq_float", content_case(v, obj(seq=float(e), action="discard"))),
        ("seq_bool", content_case(v, obj(seq=True, action="discard"))),
        ("seq_null", content_case(v, obj(seq=None, action="discard"))),
        ("seq_infinite", content_case(v, '{"seq": 1e400, "action": "discard"}')),
        ("seq_5000_digits", content_case(v, '{"seq": 1' + "0" * 5000 + ', "action": "discard"}')),
        ("seq_400_digits", content_case(v, '{"seq": 1' + "0" * 400 + ', "action": "discard"}')),
        ("seq_negative", content_case(v, obj(seq=-1, action="discard"))),
        ("seq_not_filename", content_case(v, obj(seq=e + 5, action="discard"))),
        ("replayed_seq", content_case(f"verdict-{e - 1}.json", obj(seq=e - 1, action="discard"))),
        ("skipped_seq", content_case(f"verdict-{e + 1}.json", obj(seq=e + 1, action="discard"))),
        ("huge_seq", content_case(f"verdict-{10**30}.json", obj(seq=10**30, action="discard"))),
        ("action_unknown", content_case(v, obj(seq=e, action="merge"))),
        ("action_uppercase", content_case(v, obj(seq=e, action="KEEP"))),
        ("action_number", content_case(v, obj(seq=e, action=1))),
        ("action_null", content_case(v, obj(seq=e, action=None))),
        ("action_deep_list", content_case(v, raw(e, '"action": ' + "[" * 200 + "]" * 200, action=False))),
        ("notes_number", content_case(v, obj(seq=e, action="discard", notes=5))),
        ("notes_object", content_case(v, obj(seq=e, action="discard", notes={"a": {"b": ["c"]}}))),
        ("notes_nul", content_case(v, obj(seq=e, action="discard", notes="before\u0000after"))),
        ("notes_lone_surrogate", content_case(v, raw(e, '"notes": "\\ud800"'))),
        ("score_string", content_case(v, obj(seq=e, action="discard", score="2.5"))),
        ("score_bool", content_case(v, obj(seq=e, action="discard", score=True))),
        ("score_nan", content_case(v, raw(e, '"score": NaN'))),
        ("score_infinity", content_case(v, raw(e, '"score": -Infinity'))),
        ("score_huge_int", content_case(v, raw(e, '"score": 1' + "0" * 400))),
        ("metrics_list", content_case(v, obj(seq=e, action="discard", metrics=[1, 2]))),
        ("metrics_string", content_case(v, obj(seq=e, action="discard", metrics="good"))),
        ("metrics_nan", content_case(v, raw(e, '"metrics": {"mae": NaN}'))),
        (
            "metrics_deep",
            content_case(v, raw(e, '"metrics": ' + '{"a": ' * 500 + "1" + "}" * 500)),
        ),  # noqa: E501
        ("hash_number", content_case(v, obj(seq=e, action="keep", pipeline_hash=12345))),
        ("keep_without_eval", content_case(v, obj(seq=e, action="keep", score=0.1, pipeline_hash=None))),
        ("keep_forged_hash", content_case(v, obj(seq=e, action="keep", score=0.1, pipeline_hash="0" * 16))),
        ("stale_pipeline_hash", stale_hash),
        ("deeply_nested", content_case(v, deep)),
        ("symlink_etc_passwd", in_place(v, lambda p: os.symlink("/etc/passwd", p))),
        ("symlink_host_path", in_place(v, lambda p: os.symlink(host.get("lab_toml", "/etc/hostname"), p))),
        ("symlink_relative", in_place(v, lambda p: os.symlink("../pipeline/model.py", p))),
        ("symlink_dangling", in_place(v, lambda p: os.symlink("/nonexistent/verdict.json", p))),
        ("directory", in_place(v, lambda p: (p.mkdir(), (p / "x.json").write_text("{}")))),
        ("fifo", in_place(v, os.mkfifo)),
        ("name_letters", content_case("verdict-abc.json", obj(seq=e, action="discard"))),
        ("name_empty_tag", content_case("verdict-.json", obj(seq=e, action="discard"))),
        ("name_spaces", content_case("verdict-a b!.json", obj(seq=e, action="discard"))),
        ("name_leading_zero", content_case(f"verdict-0{e}.json", obj(seq=e, action="discard"))),
        ("name_superscript_digit", content_case("verdict-\u00b2.json", obj(seq=2, action="discard"))),
        ("name_arabic_digit", content_case("verdict-\u0661.json", obj(seq=1, action="discard"))),
        ("name_negative", content_case("verdict--1.json", obj(seq=-1, action="discard"))),
        ("name_too_long", content_case(f"verdict-{'9' * 60}.json", obj(seq=e, action="discard"))),
        ("unreadable_mode_000", unreadable(e)),
        ("ack_path_is_directory", ack_directory(e)),
        ("ack_path_is_symlink", ack_symlink(e, host.get("lab_toml", "/etc/hostname"))),
        ("flood", flood(30)),
    ]


def expected_as_directory():
    """The host's own file in the channel, expected.json, replaced by a directory; then two discards."""
    e = expected_seq()
    os.unlink(CONTROL / "expected.json")
    (CONTROL / "expected.json").mkdir()
    (CONTROL / "expected.json" / "x").write_text("x")
    put(f"verdict-{e}.json", obj(seq=e, action="discard", notes="first"))
    print(json.dumps({"event": "text", "text": f"first: {wait_ack(str(e))}"}), flush=True)
    done = subprocess.run(["arl", "verdict", "discard", "--notes", "second"], capture_output=True, text=True)
    print(json.dumps({"event": "text", "text": f"second: {done.stdout.strip()} {done.stderr.strip()}"}), flush=True)
    time.sleep(3600)
    return 0


def main():
    if sys.argv[1:] == ["expected-as-directory"]:
        return expected_as_directory()
    e = expected_seq()
    results = {}
    for case, write in cases(e):
        tags = []
        try:
            # Clear every ack this case could be answered with, so an old one cannot pass for the new.
            names = {"invalid", str(e)} | {f"flood{i:02d}" for i in range(30)}
            for tag in names:
                remove(CONTROL / f"ack-{tag}.json")
            tags = write()
            results[case] = [wait_ack(t)["outcome"] for t in tags]
        except Exception as exc:  # the test finds no ack of the case and says so
            results[case] = [f"agent-error: {type(exc).__name__}: {exc}"]
        hold(case, tags)
        print(json.dumps({"event": "text", "text": f"{case}: {results[case]}"}), flush=True)
    done = subprocess.run(["arl", "verdict", "discard", "--notes", "corpus done"], capture_output=True, text=True)
    print(
        json.dumps({"event": "text", "text": f"final discard: {done.stdout.strip()} {done.stderr.strip()}"}), flush=True
    )
    time.sleep(3600)
    return 0


if __name__ == "__main__":
    sys.exit(main())
