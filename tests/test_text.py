"""Text from the agent reaches the terminal with its control characters escaped, through `clean` and the CLI."""

from __future__ import annotations

import re
from pathlib import Path

from arl.history import results
from arl.report.transcript import readable
from arl.util.text import clean
from tests.conftest import arl
from tests.test_results_cmd import row

C0 = [chr(c) for c in range(0x20) if chr(c) not in "\t\n"]
C1 = [chr(c) for c in range(0x80, 0xA0)]
BIDI = [chr(c) for c in [*range(0x202A, 0x202F), *range(0x2066, 0x206A)]]
UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
HOSTILE = "\x1b]0;pwned\x07\x1b[31mred"


def test_every_control_comes_out_escaped() -> None:
    for c in [*C0, "\x7f", *C1, *BIDI]:
        for newlines in (False, True):
            out = clean(f"a{c}b", newlines=newlines)
            want = f"\\x{ord(c):02x}" if ord(c) < 0x100 else f"\\u{ord(c):04x}"
            assert out == f"a{want}b", (c, newlines)
            assert not UNSAFE.search(out)
    everything = "".join([*C0, "\x7f", *C1, *BIDI, "\t", "\n"])
    assert not UNSAFE.search(clean(everything))
    assert not UNSAFE.search(clean(everything, newlines=True).replace("\t", "").replace("\n", ""))


def test_newlines_and_tabs() -> None:
    assert clean("a\tb\nc") == "a\\tb\\nc"
    assert clean("a\tb\nc", newlines=True) == "a\tb\nc"
    assert clean("a\r\nb", newlines=True) == "a\\x0d\nb"  # a carriage return could overwrite the line
    assert clean("C:\\x1b \\n") == "C:\\x1b \\n"  # a backslash stays: the agent's own text, not an escape
    assert clean(HOSTILE) == "\\x1b]0;pwned\\x07\\x1b[31mred"


def test_a_normal_note_is_unchanged() -> None:
    note = "Tried a smaller step (é, ñ, Größe).\n  - 漢字 and emoji 🚀👩‍🔬 are fine\n\tindented line\n"
    assert clean(note, newlines=True) == note
    assert clean("plain ascii note") == "plain ascii note"


def test_the_live_view_escapes_the_stream() -> None:
    assert readable("command", [HOSTILE]) == ["agent text: \\x1b]0;pwned\\x07\\x1b[31mred"]


def test_cli_prints_hostile_notes_escaped(repo: Path) -> None:
    arl("init", "--example", "curve-fit", cwd=repo)
    tsv = repo / "results.tsv"
    assert tsv.exists()
    results.append(tsv, row(0, 1, "baseline", 3.0, notes=f"{HOSTILE}\u202eevil\nsecond line"))
    for fmt in ("table", "markdown", "tsv"):
        out = arl("results", "--format", fmt, cwd=repo).stdout
        assert "\x1b" not in out and "\x07" not in out and "\u202e" not in out, fmt
        assert "\\x1b]0;pwned\\x07\\x1b[31mred" in out, fmt
    # the TSV output is still the file's format: its own escape of the newline stays
    assert "\\u202eevil\\nsecond line" in arl("results", "--format", "tsv", cwd=repo).stdout
    shown = arl("show", "0", cwd=repo).stdout
    assert "\x1b" not in shown and "\\x1b]0;pwned\\x07\\x1b[31mred\\u202eevil\n  second line" in shown
