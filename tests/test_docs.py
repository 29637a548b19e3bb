"""The docs in the repository keep up with the code: every lab.toml key in docs/lab-toml.md with its default, and
the README's links resolve inside the repository."""

from __future__ import annotations

import json
import re
from typing import Any

from arl.config.schema import SCHEMA
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


def _options() -> dict[str, dict[str, str]]:
    """command -> option string -> dest, for every `arl` and `arl-step` command."""
    from arl import cli, step_cli

    out: dict[str, dict[str, str]] = {}
    for prog, parser in (("arl", cli.build_parser()), ("arl-step", step_cli.build_parser())):
        for action in parser._actions:
            for name, sub in getattr(action, "choices", None).items() if action.dest == "command" else ():
                out[f"{prog} {name}"] = {o: a.dest for a in sub._actions for o in a.option_strings}
    return out


def _section(text: str, title: str) -> str:
    return text.split(title, 1)[1].split("\n## ", 1)[0]


def test_every_flag_the_reference_names_exists_and_every_run_key_says_its_flag() -> None:
    text = (DOCS / "lab-toml.md").read_text()
    options = _options()
    known = {o for opts in options.values() for o in opts}
    docker = {"--memory", "--memory-swap", "--cpus", "--pids-limit", "--gpus", "--network"}  # docker run's, quoted
    named = set(re.findall(r"`(--[a-z][a-z-]*)", text)) - docker
    assert named and sorted(named - known) == []
    run_flags = options["arl run"]
    for key, cells in _rows(text)["run"].items():
        flags = [o for o, dest in run_flags.items() if dest == key or dest == f"no_{key}"]
        said = re.findall(r"Flag: `(--[a-z-]+)`", cells[2])
        assert said == flags, f"[run] {key}: the row names the flag(s) {said}, `arl run` has {flags}"
        assert flags or "No flag" in cells[2], f"[run] {key}: say that it has no flag"


def test_every_environment_variable_named_is_read_and_the_users_are_named() -> None:
    table = _section((DOCS / "lab-toml.md").read_text(), "## Environment variables")
    named = set(re.findall(r"`(ARL_[A-Z_]+)", table))
    code = [*(ROOT / "arl").rglob("*.py"), *(ROOT / "hooks").glob("*.py")]  # the hooks' runner reads some too
    source = "\n".join(p.read_text() for p in code)
    assert sorted(v for v in named if f'"{v}"' not in source) == []
    assert {"ARL_LAB", "ARL_QUIET", "ARL_DEBUG", "ARL_DATA", "ARL_BASE_FROM", "ARL_FAULT"} <= named


def test_protocol_names_every_column_in_order_and_every_file_of_the_state_folder() -> None:
    from arl.history.format import COLUMNS

    text = (DOCS / "protocol.md").read_text()
    columns = re.findall(r"^\| `([a-z_]+)` \|", _section(text, "## results.tsv"), re.M)
    assert columns == COLUMNS
    assert "`verdict_seq`" in text  # the one metric arl adds to every agent's row
    state = _section(text, "## Other files of a lab's `.arl/`")
    source = "\n".join(p.read_text() for p in (ROOT / "arl").rglob("*.py"))
    made = set(re.findall(r'state_dir / "([^"/]+)"', source)) | {"control"}
    assert sorted(name for name in made if f"`{name}" not in state) == []
