"""Every option of `arl` and `arl-step` says what it does and its default, every command has a description; the
lazily built parsers parse exactly as the full ones; `--version`; exit codes through the console scripts."""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import pytest

import arl
from arl import cli, step_cli
from tests.conftest import BIN, run
from tests.conftest import arl as run_arl
from tests.test_config import write_lab


def _commands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def undocumented(parser: argparse.ArgumentParser) -> list[str]:
    """What a parser and its sub-commands leave unsaid: an option that takes a value without a sentence naming its
    default (or that it is required, or that lab.toml gives it), a switch or positional without a sentence, a
    sub-command without a description. A switch (no value) is off unless given: its default goes without saying."""
    found = []
    for name, sub in {"": parser, **_commands(parser)}.items():
        where = f"{parser.prog} {name}".strip()
        if name and not sub.description:
            found.append(f"{where}: no description")
        for action in sub._actions:
            if isinstance(action, (argparse._HelpAction, argparse._VersionAction, argparse._SubParsersAction)):
                continue
            flag = "/".join(action.option_strings) or action.dest
            text = action.help or ""
            if len(text.split()) < 3:
                found.append(f"{where} {flag}: no help sentence")
            elif action.option_strings and action.nargs != 0 and not re.search(r"default|required|lab\.toml", text):
                found.append(f"{where} {flag}: the help does not give the default")
    return found


def test_every_option_has_help_with_its_default() -> None:
    assert undocumented(cli.build_parser()) == []
    assert undocumented(step_cli.build_parser()) == []


def test_the_check_catches_a_bare_option_and_a_missing_description() -> None:
    parser = cli.build_parser()
    sub = _commands(parser)["results"]
    sub.add_argument("--bare")
    sub.add_argument("--vague", help="something or other")
    sub.description = None
    assert undocumented(parser) == [
        "arl results: no description",
        "arl results --bare: no help sentence",
        "arl results --vague: the help does not give the default",
    ]


def _options(parser: argparse.ArgumentParser) -> dict[str, list[str]]:
    return {
        name: sorted("/".join(a.option_strings) or a.dest for a in sub._actions)
        for name, sub in _commands(parser).items()
    }


@pytest.mark.parametrize("module", [cli, step_cli], ids=["arl", "arl-step"])
def test_the_parser_built_for_one_command_has_that_commands_options(module: object) -> None:
    build = module.build_parser  # type: ignore[attr-defined]
    full = _options(build())
    for name in full:
        assert _options(build(name, everything=False))[name] == full[name], name


@pytest.mark.parametrize(
    ("argv", "command"),
    [
        (["results", "--last", "3"], "results"),
        (["--lab", "eval", "results"], "results"),  # a lab folder named like a command
        (["--la", "eval", "show", "3"], "show"),  # argparse's abbreviation of --lab
        (["--debug", "eval", "--data", "d"], "eval"),
        (["--help"], None),
        (["nonsense"], None),
        (["--", "eval"], None),
    ],
)
def test_the_command_is_found_before_parsing(argv: list[str], command: str | None) -> None:
    assert cli.chosen(argv, list(cli.COMMANDS)) == command


def test_version() -> None:
    for prog in ("arl", "arl-step"):
        proc = run([str(BIN / prog), "--version"])
        assert proc.stdout.strip() == f"{prog} {arl.__version__}"


def test_help_lists_every_command_and_a_commands_help_its_options(tmp_path: Path) -> None:
    top = run_arl("--help", cwd=tmp_path).stdout
    assert all(name in top for name in cli.COMMANDS) and "--version" in top
    one = run_arl("results", "--help", cwd=tmp_path).stdout
    assert "--format" in one and "(default: table)" in one and cli.COMMANDS["results"][1][:40] in " ".join(one.split())
    steps = run([str(BIN / "arl-step"), "commit", "--help"], cwd=tmp_path).stdout
    assert "--notes" in steps and "--slot" in steps and "--force" in steps


def test_exit_codes_through_the_console_scripts(tmp_path: Path) -> None:
    assert run([str(BIN / "arl")], cwd=tmp_path, check=False).returncode == 2
    assert run([str(BIN / "arl-step")], cwd=tmp_path, check=False).returncode == 2
    lost = run([str(BIN / "arl"), "results"], cwd=tmp_path, check=False)
    assert lost.returncode == 1 and lost.stderr.startswith("arl: error: no lab.toml")
    assert run([str(BIN / "arl"), "results", "--bogus"], cwd=tmp_path, check=False).returncode == 2
    assert run([str(BIN / "arl-step"), "should-stop"], cwd=tmp_path, check=False).returncode == 1


def test_main_called_as_a_function_returns(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lab = write_lab(tmp_path / "lab")
    assert cli.main(["--lab", str(lab), "results", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == []
    assert step_cli.main(["--lab", str(lab), "no-such-step"]) == 2
