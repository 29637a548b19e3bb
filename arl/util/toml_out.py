"""Writing TOML values: quoted and escaped, never formatted by hand."""

from __future__ import annotations

import json


def toml_str(value: str) -> str:
    """A TOML basic string. JSON's escapes are TOML's; DEL and lone surrogates need extra care."""
    clean = value.encode("utf-8", "replace").decode("utf-8")
    return json.dumps(clean, ensure_ascii=False).replace("\x7f", "\\u007f")
