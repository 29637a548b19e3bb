"""The docs in the repository keep up with the code: every lab.toml key in docs/lab-toml.md with its default, and
the README's links resolve inside the repository."""

from __future__ import annotations

import json
import re
from typing import Any

from arl.lab.schema import SCHEMA
from tests.conftest import ROOT

DOCS = ROOT / "docs"


def _rendered(default: Any) -> str:
    """A default as lab.toml spells it."""
    if isinstance(default, bool):
        return "true" if default else "false"
    if isinstance(default, (str, list)):
        return json.dumps(default)
    return repr(default)


def _rows(text: str) -> dict[str, dict[str, list[str]]]:
    """table -> key -> the cells of its row, from the `## [table]` sections' markdown tables."""
    out: dict[str, dict[str, list[str]]] = {}
    table = None
    for line in text.splitlines():
        head = re.fullmatch(r"## \[([a-z_.]+)\]", line.strip())
        if head:
            table = head.group(1)
            out[table] = {}
        elif line.startswith("## "):
            table = None
        elif table and line.startswith("| `"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            out[table][cells[0].strip("`")] = cells[1:]
    return out


def problems(text: str) -> list[str]:
    """What docs/lab-toml.md lacks: a key of the schema, or its default in the key's row (`type | default | ...`)."""
    rows = _rows(text)
    found: list[str] = []
    for table, keys in SCHEMA.items():
        for key, (_types, default, required) in keys.items():
            cells = rows.get(table, {}).get(key)
            if cells is None or len(cells) < 3:
                found.append(f"[{table}] {key} is not documented")
            elif required and "required" not in cells[1]:
                found.append(f"[{table}] {key} is required, and its row does not say so")
            elif default is not None and f"`{_rendered(default)}`" not in cells[1]:
                found.append(f"[{table}] {key}: the default `{_rendered(default)}` is not stated ({cells[1]!r})")
            elif default is None and not required and not cells[1]:
                found.append(f"[{table}] {key}: no default stated")
            elif not cells[2]:
                found.append(f"[{table}] {key}: no description")
    return found


def test_every_schema_key_is_documented_with_its_default() -> None:
    assert problems((DOCS / "lab-toml.md").read_text()) == []


def test_the_check_catches_a_missing_key_and_a_wrong_default() -> None:
    text = (DOCS / "lab-toml.md").read_text()
    no_key = "\n".join(ln for ln in text.splitlines() if not ln.startswith("| `max_api_outage_minutes` |"))
    assert problems(no_key) == ["[run] max_api_outage_minutes is not documented"]
    wrong = text.replace("| `pids_limit` | integer | `512` |", "| `pids_limit` | integer | `256` |")
    assert wrong != text
    assert problems(wrong) == ["[sandbox] pids_limit: the default `512` is not stated ('`256`')"]


def test_readme_links_stay_inside_the_repository() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "../shared" not in readme
    links = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", readme)
    local = [link for link in links if "://" not in link]
    for name in ("lab-toml.md", "agents.md", "custom-images.md", "protocol.md"):
        assert f"docs/{name}" in local, f"README does not link docs/{name}"
    for link in local:
        assert (ROOT / link).exists(), f"README links {link}, which does not exist"
        assert (ROOT / link).resolve().is_relative_to(ROOT.resolve())
    for doc in DOCS.glob("*.md"):
        for link in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", doc.read_text()):
            if "://" not in link:
                assert (doc.parent / link).exists(), f"{doc.name} links {link}, which does not exist"


def test_the_lab_template_points_to_the_reference() -> None:
    text = (ROOT / "templates" / "lab" / "lab.toml").read_text()
    assert "docs/lab-toml.md" in text and "documented in arl's README" not in text
