"""Text that came from the agent, made safe to print: no character of it can drive the user's terminal."""

from __future__ import annotations

import re

# C0 controls (ESC starts ANSI/OSC sequences, CR and BS overwrite what is shown), DEL, C1 controls (U+009B is a
# one-character CSI on some terminals), the bidi embeddings, overrides and isolates that reorder what is shown,
# and lone surrogates (from undecodable bytes), which would make print() raise. \t and \n are handled apart.
_UNSAFE = r"\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff"
_IN_LINES = re.compile(f"[{_UNSAFE}]")
_IN_A_LINE = re.compile(f"[\\t\\n{_UNSAFE}]")
_NAMED = {"\t": "\\t", "\n": "\\n"}


def _escape(m: re.Match[str]) -> str:
    c = m.group()
    n = ord(c)
    return _NAMED.get(c) or (f"\\x{n:02x}" if n < 0x100 else f"\\u{n:04x}")


def clean(text: str, *, newlines: bool = False) -> str:
    """`text` with every control, bidi or surrogate character written as a visible escape (`\\x1b`, `\\u202e`);
    `\\n` and `\\t` are kept with `newlines`, escaped otherwise. A backslash stays as it is."""
    if text.isprintable():  # nearly every string: no character to escape, checked in C
        return text
    return (_IN_LINES if newlines else _IN_A_LINE).sub(_escape, text)
