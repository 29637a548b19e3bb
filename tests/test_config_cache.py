"""lab.toml is parsed on every load, with no cache beside it: an edit counts at once, its errors name the file and
the place, and reading a lab writes nothing into it."""

from __future__ import annotations

from pathlib import Path

import pytest

from arl.config import config
from arl.errors import ArlError
from tests.test_config import write_lab


def test_an_edit_counts_at_once_and_nothing_is_written(tmp_path: Path) -> None:
    lab = write_lab(tmp_path / "lab")
    (lab / ".arl").mkdir(exist_ok=True)
    toml = lab / "lab.toml"
    assert config.load(toml).name == "t"
    toml.write_text(toml.read_text().replace('name = "t"', 'name = "u"'))  # the same size
    assert config.load(toml).name == "u"
    toml.write_bytes(toml.read_bytes().replace(b"\n", b"\r\n"))  # CRLF reads as it always did
    assert config.load(toml).name == "u"
    assert list((lab / ".arl").iterdir()) == []


def test_errors_name_the_file_and_the_place(tmp_path: Path) -> None:
    lab = write_lab(tmp_path / "lab")
    toml = lab / "lab.toml"
    toml.write_text(toml.read_text() + "\n[run]\nmax_iterations = = 3\n")
    with pytest.raises(ArlError, match=r"invalid TOML in \[run\] at key max_iterations"):
        config.load(toml)
    toml.write_bytes(b'[lab]\nname = "\xff"\n')
    with pytest.raises(ArlError, match="not UTF-8 text"):
        config.load(toml)
