"""Spellings a user brings along: autoresearch-lab's `verdict --action`, `--target-score 0` (its "off"), and
`--json` / `--format json` both wherever either is accepted."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import BIN, arl, busy_repo, run
from tests.test_config import one_line_error

pytestmark = pytest.mark.lab(image=None, folder="research", busy=True, commit=False)  # no agent runs here


def test_verdict_takes_its_action_as_autoresearch_lab_spelled_it(lab: Path) -> None:
    outside = "`arl verdict` runs inside the sandbox"  # past the parser: the action was understood
    one_line_error(arl("verdict", "--action", "keep", "--notes", "x", cwd=lab, check=False), outside)
    one_line_error(arl("verdict", "discard", "--notes", "x", cwd=lab, check=False), outside)
    for argv in (["--action", "keep", "discard"], []):
        one_line_error(arl("verdict", *argv, cwd=lab, check=False), "keep or discard", code=2)


def test_a_target_score_of_0_is_refused_with_both_spellings(lab: Path) -> None:
    proc = arl("run", "--dry-run", "--agent", "offline", "--data", "data", "--target-score", "0", cwd=lab, check=False)
    one_line_error(proc, "--target-score", "'off' for no target", "0.0 for a target of zero", code=2)
    for value in ("off", "0.0", "2.5"):
        proc = arl("run", "--dry-run", "--agent", "offline", "--data", "data", "--target-score", value, cwd=lab)
        assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("command", [["status"], ["eval", "--data", "data"], ["diagnose", "--data", "data"]])
def test_format_json_is_json(lab: Path, command: list[str]) -> None:
    a = json.loads(arl(*command, "--json", cwd=lab).stdout)
    b = json.loads(arl(*command, "--format", "json", cwd=lab).stdout)
    for d in (a, b):
        d.pop("seconds", None)  # eval's own timing
    assert a == b and isinstance(a, dict)


def test_autoresearch_lab_installed_beside_arl_is_named_with_what_to_do(tmp_path: Path) -> None:
    site = tmp_path / "site"
    meta = site / "autoresearch_lab-0.2.6.dist-info"
    meta.mkdir(parents=True)
    (meta / "METADATA").write_text("Metadata-Version: 2.1\nName: autoresearch-lab\nVersion: 0.2.6\n")
    env = {"PYTHONPATH": str(site)}
    lab = busy_repo(tmp_path / "repo") / "research"
    lab.mkdir()
    proc = run([str(BIN / "arl"), "init"], cwd=lab, env=env)
    assert "autoresearch-lab 0.2.6 is installed" in proc.stderr and "pip uninstall -y autoresearch-lab" in proc.stderr
    assert "autoresearch-lab" not in run([str(BIN / "arl"), "results"], cwd=lab, env=env).stderr  # not every command
    assert "autoresearch-lab" not in arl("init", "--force", cwd=lab).stderr  # not when it is not there


def test_counts_of_one_are_singular() -> None:
    from typing import cast

    from arl.agents.prompt import budget_line
    from arl.runstate.runstate import Settings

    one = budget_line(cast(Settings, {"max_iterations": 1}), None, 0.0)
    assert "at most 1 experiment in this run" in one
    assert "at most 2 experiments in this run" in budget_line(cast(Settings, {"max_iterations": 2}), None, 0.0)
