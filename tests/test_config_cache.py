"""What tomllib made of lab.toml, kept in `.arl/cache` so that a step need not import tomllib: used only while
lab.toml's bytes are exactly the ones it was made from; never where no host-owned `.arl` folder is."""

from __future__ import annotations

import marshal
from pathlib import Path

import pytest

from arl.errors import ArlError
from arl.lab import config
from tests.test_config import write_lab


def test_the_parsed_lab_toml_is_reused_only_for_the_same_bytes(tmp_path: Path) -> None:
    lab = write_lab(tmp_path / "lab")
    (lab / ".arl").mkdir(exist_ok=True)
    toml = lab / "lab.toml"
    assert config.load(toml).name == "t"
    cache = lab / ".arl" / "cache" / "lab.toml.marshal"
    version, data, raw = marshal.loads(cache.read_bytes())
    assert data == toml.read_bytes() and raw["lab"]["name"] == "t"
    # a marked entry answers, which shows that the cache is what is read
    raw["lab"]["name"] = "from-cache"
    cache.write_bytes(marshal.dumps((version, data, raw)))
    assert config.load(toml).name == "from-cache"
    # another lab.toml of the same size: parsed again
    toml.write_text(toml.read_text().replace('name = "t"', 'name = "u"'))
    assert config.load(toml).name == "u"
    # a damaged entry is a miss
    cache.write_bytes(b"\x00nonsense")
    assert config.load(toml).name == "u"


def test_errors_are_the_same_with_a_cache(tmp_path: Path) -> None:
    lab = write_lab(tmp_path / "lab")
    (lab / ".arl").mkdir(exist_ok=True)
    toml = lab / "lab.toml"
    config.load(toml)
    toml.write_text(toml.read_text() + "\n[run]\nmax_iterations = = 3\n")
    with pytest.raises(ArlError, match=r"invalid TOML in \[run\] at key max_iterations"):
        config.load(toml)
    toml.write_bytes(b'[lab]\nname = "\xff"\n')
    with pytest.raises(ArlError, match="not UTF-8 text"):
        config.load(toml)


def test_no_cache_without_an_arl_folder(tmp_path: Path) -> None:
    lab = write_lab(tmp_path / "lab")
    config.load(lab / "lab.toml")
    assert not (lab / ".arl" / "cache").exists()
