"""What a new user meets in the loop's first hour, on the real engine: each mistake gets its cause, at once, and
loses nothing (a backend renamed after the baseline, a history that ends on a plateau, steps by hand in the wrong
order, a regression kept by hand, a guard that says no, an iteration timeout of 0)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .conftest import BIN, arl, git, run
from .loophelpers import arl_step, containers_of, rows, run_arl, set_toml

pytestmark = pytest.mark.docker
ENV = {"ARL_BASE_FROM": "debootstrap"}


def test_a_backend_that_no_longer_loads_stops_the_run_before_any_experiment(lab: Path) -> None:
    code, out, _ = run_arl(lab, "--max-iterations", "1")
    assert code == 0 and [r["outcome"] for r in rows(lab)][0] == "baseline"
    set_toml(lab, "backend", "class", "CurveFitBackendRenamed")
    git(lab, "commit", "-qam", "a class renamed")
    code, out, err = run_arl(lab, "--max-iterations", "3")
    line = "arl: error: the backend cannot be loaded in the sandbox: backend.py has no class 'CurveFitBackendRenamed'"
    assert code == 1 and line in err, err[-2000:]
    assert "ended: error: the backend cannot be loaded" in out  # the end line names the cause
    assert "removing the leftover container" not in err + out
    assert len(rows(lab)) == 2 and not containers_of(lab)  # no crash rows, nothing launched


def test_a_history_on_a_plateau_stops_before_launch_and_says_how_to_go_on(lab: Path) -> None:
    set_toml(
        lab, "agent", "command", ["sh", "-c", "while :; do arl eval >/dev/null; arl verdict discard --notes same; done"]
    )
    git(lab, "commit", "-qam", "an agent that only discards")
    code, out, _ = run_arl(lab, "--max-iterations", "2", "--plateau-threshold", "0", agent="command")
    assert code == 0 and [r["outcome"] for r in rows(lab)] == ["baseline", "discard", "discard"]
    code, out, err = run_arl(lab, "--max-iterations", "5", "--plateau-threshold", "2", agent="command")
    assert code == 0, err[-2000:]
    assert "stop: plateau_threshold: 2 experiments in a row" in out
    assert "to go on: --plateau-threshold 4, or 0 for no limit" in out
    assert "+ docker run --sig-proxy=false" not in err  # no agent container was started for nothing
    assert len(rows(lab)) == 3 and "removing the leftover container" not in err + out


def test_an_iteration_timeout_of_zero_means_no_timeout(lab: Path) -> None:
    slow = "sleep 4; arl eval >/dev/null; arl verdict discard --notes slow; sleep 600"
    set_toml(lab, "agent", "command", ["sh", "-c", slow])
    git(lab, "commit", "-qam", "a slow agent")
    code, out, err = run_arl(lab, "--max-iterations", "1", "--iteration-timeout", "0", agent="command")
    assert code == 0, out[-2000:] + err[-2000:]
    assert [r["outcome"] for r in rows(lab)] == ["baseline", "discard"], out
    assert "no verdict within the iteration timeout" not in out
    prompt = (lab / ".arl" / "control" / "prompt.md").read_text()
    assert "There is no deadline per experiment" in prompt and "must end in a verdict within" not in prompt


def test_steps_by_hand_in_the_wrong_order_and_a_regression_kept_by_hand(lab: Path) -> None:
    set_toml(lab, "agent", "command", ["sleep", "600"])  # a person does the work here
    git(lab, "commit", "-qam", "an idle agent")
    # started from a shell that then exits, as a Makefile line or a script would: the run stays open
    pre = run(["sh", "-c", f"{BIN / 'arl-step'} preflight --data data --agent command"], cwd=lab, check=False, env=ENV)
    assert pre.returncode == 0, pre.stderr
    try:
        shown = arl("status", cwd=lab).stdout
        assert "run 1 is open, phase preflight" in shown and "driven step by step" in shown, shown
        assert json.loads(arl("status", "--json", cwd=lab).stdout)["open"] is True
        code, _, err = arl_step(lab, "commit", "--notes", "by hand", ok=None)
        assert code == 1
        no_image = "this run has no sandbox image yet (verification runs in it): run `arl-step image` first"
        assert err == f"arl-step: error: {no_image}\n"
        for name in ("image", "service-up", "baseline"):
            arl_step(lab, name)
        code, _, err = arl_step(lab, "revert", "--notes", "nothing yet", ok=None)
        assert code == 1 and "slot 0 has no workspace yet: `arl-step launch` creates it" in err
        arl_step(lab, "launch")
        model = lab / ".arl" / "workspaces" / "0" / "model.py"
        model.write_text(model.read_text().replace("OFFSET = 0.0", "OFFSET = -7.0"))
        code, _, err = arl_step(lab, "commit", "--notes", "much worse", ok=None)
        last = err.splitlines()[-1]  # after the printed docker lines: one line that says what to do
        assert code == 1 and last.startswith("arl-step: error: the workspace verifies at") and "--force" in last
        assert "not better than the best 3.28593" in last
        assert [r["outcome"] for r in rows(lab)] == ["baseline"]  # nothing recorded
        assert "OFFSET = -7.0" in model.read_text()  # and nothing lost: the person's change is still there
        code, out, err = arl_step(lab, "commit", "--notes", "much worse", "--force", ok=None)
        assert code == 0 and "committing a regression by hand" in out + err, err
        kept = rows(lab)[-1]
        assert [r["outcome"] for r in rows(lab)] == ["baseline", "keep"] and kept["notes"] == "much worse"
        assert f"Arl-Experiment: {kept['id']}" in git(lab, "log", "-1", "--format=%B")
        assert "OFFSET = -7.0" in (lab / "pipeline" / "model.py").read_text()  # the branch holds the person's keep
        model.write_text(model.read_text().replace("OFFSET = -7.0", "OFFSET = 5.0"))
        arl_step(lab, "revert", "--notes", "tried 5")
        dropped = rows(lab)[-1]
        assert dropped["outcome"] == "discard" and dropped["notes"] == "tried 5"
        assert "OFFSET = 5.0" in git(lab, "show", f"{dropped['commit']}:pipeline/model.py")  # kept under its ref
        assert "OFFSET = 5.0" not in model.read_text()  # the workspace is back on the best tree
    finally:
        arl_step(lab, "teardown", ok=None)


def test_a_guard_veto_shows_the_guards_own_words(lab: Path) -> None:
    makefile = lab / "Makefile"
    text = makefile.read_text()
    guard = "guard:\n\t@echo 'guard: OFFSET must stay within [-1, 1] (policy 7)'; exit 2\n"
    makefile.write_text(text.replace("guard:\n\t@true\n", guard))
    assert guard in makefile.read_text()
    git(lab, "commit", "-qam", "a strict guard")
    code, out, err = run_arl(lab, "--max-iterations", "3", "--plateau-threshold", "0")
    assert code == 0, err[-2000:]
    vetoed = [r for r in rows(lab) if r["outcome"] == "vetoed"]
    assert vetoed, out
    assert "guard: OFFSET must stay within [-1, 1] (policy 7)" in vetoed[0]["notes"]
    assert "why: the pre-commit hook (make guard) failed: guard: OFFSET must stay within [-1, 1] (policy 7)" in out
    assert "`make guard` failed" not in vetoed[0]["notes"]  # the hook's own closing line adds nothing


def test_a_backend_reads_the_files_beside_it_in_the_sandbox(lab: Path) -> None:
    # A JSON config (mounted by default) and reference outputs named in [backend] files; a secret-ish hidden file
    # and an unlisted file stay out.
    (lab / "weights.json").write_text('{"scale": 2.0}')
    (lab / "refs").mkdir()
    (lab / "refs" / "expected.dat").write_text("42\n")
    (lab / "unlisted.dat").write_text("not for the sandbox\n")
    (lab / ".env").write_text("TOKEN=x\n")
    backend = lab / "backend.py"
    text = backend.read_text()
    reads = (  # in the scorer: the trusted part, which runs with the backend's files beside it
        "        here = Path(__file__).parent\n"
        "        scale = json.loads((here / 'weights.json').read_text())['scale']\n"
        "        assert (here / 'refs' / 'expected.dat').read_text() == '42\\n'\n"
        "        for hidden in ('.env', 'unlisted.dat'):\n"
        "            assert not (here / hidden).exists(), hidden\n"
        '        _, ys = read_points(data_dir / f"{sample_id}.csv")\n'
    )
    text = text.replace('        _, ys = read_points(data_dir / f"{sample_id}.csv")\n', reads, 1)
    text = text.replace("import csv\n", "import csv\nimport json\n", 1)
    text = text.replace("return SampleResult(sample_id, mae,", "return SampleResult(sample_id, mae * scale,", 1)
    assert "mae * scale" in text and "weights.json" in text
    backend.write_text(text)
    set_toml(lab, "backend", "files", ["*.json", "refs/*"])
    git(lab, "add", "-A")
    git(lab, "commit", "-qm", "a backend that reads its files")
    arl_step(lab, "preflight", "--data", "data", "--agent", "offline")
    try:
        for name in ("image", "service-up", "baseline"):
            code, out, err = arl_step(lab, name, ok=None)
            assert code == 0, (name, err[-2000:])
    finally:
        arl_step(lab, "teardown", ok=None)
    (base,) = rows(lab)
    assert base["outcome"] == "baseline" and abs(float(base["verified_score"]) - 2 * 3.28593) < 1e-4
