"""lab.toml: loading, defaults, discovery, and one-line errors naming file, table and key."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from arl.config import config
from arl.errors import ArlError
from tests.conftest import arl

MINIMAL_BACKEND = """
from arl import EvalBackend, EvalResult

class B(EvalBackend):
    def evaluate(self, pipeline_dir, data_dir, sample_ids=None):
        return EvalResult(score=1.5, metrics={"n": 1})
"""


# ---- helpers shared by the test files of the foundation (import them from here) -------------------------------


def one_line_error(proc: subprocess.CompletedProcess[str], *needles: str, code: int = 1) -> str:
    """Assert the CLI failed as README says: exit code, exactly one `arl: error:` line, no traceback."""
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode == code, f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    assert "Traceback" not in proc.stderr, proc.stderr
    assert len(lines) == 1, f"expected one line on stderr, got:\n{proc.stderr}"
    assert lines[0].startswith("arl: error: "), lines[0]
    for needle in needles:
        assert needle in lines[0], f"{needle!r} not in {lines[0]!r}"
    return lines[0]


def write_lab(
    root: Path,
    backend: str = MINIMAL_BACKEND,
    toml: str = '[lab]\nname = "t"\n\n[backend]\nclass = "B"\neval_timeout = 30\n',
    extra: dict[str, str] | None = None,
) -> Path:
    """A small lab: lab.toml, backend.py, an empty pipeline/ and a data/ folder with one file."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "lab.toml").write_text(textwrap.dedent(toml))
    (root / "backend.py").write_text(textwrap.dedent(backend))
    (root / "pipeline").mkdir(exist_ok=True)
    (root / "data").mkdir(exist_ok=True)
    (root / "data" / "one.txt").write_text("1\n")
    for rel, text in (extra or {}).items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(textwrap.dedent(text))
    return root


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")


def process_gone(pid: int) -> bool:
    """No such process, or a zombie (dead, waiting to be reaped)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        return False
    return stat.rsplit(")", 1)[-1].split()[0] in ("Z", "X")


# ---- loading ---------------------------------------------------------------------------------------------------


def test_defaults_and_paths_relative_to_lab_toml(tmp_path: Path) -> None:
    lab = write_lab(tmp_path / "lab")
    cfg = config.load(lab / "lab.toml")
    assert cfg.name == "t"
    assert cfg.pipeline_dir == lab.resolve() / "pipeline"
    assert cfg.results_file == lab.resolve() / "results.tsv"
    assert cfg.agent_instructions == lab.resolve() / "AGENT.md"
    assert cfg.backend_module == lab.resolve() / "backend.py"
    assert cfg.direction == "minimize" and not cfg.maximize
    assert cfg.eval_timeout == 30.0
    assert cfg.host_service is None
    assert cfg.agent_kind == "claude"
    assert cfg.run.max_iterations == 50 and cfg.run.target_score is None and cfg.run.verify is True
    assert cfg.run.plateau_threshold == 10 and cfg.run.iteration_timeout == 900
    with pytest.raises(AttributeError):
        cfg.name = "other"  # type: ignore[misc]  # frozen


def test_every_documented_key_loads(tmp_path: Path) -> None:
    lab = write_lab(
        tmp_path / "lab",
        toml="""
        [lab]
        name = "full"
        pipeline_dir = "src"
        agent_instructions = "INSTR.md"
        results_file = "out/results.tsv"
        direction = "maximize"

        [backend]
        module = "be/backend.py"
        class = "B"
        eval_timeout = 12.5

        [backend.host_service]
        command = "python daemon.py --port 9100"
        port = 9100

        [agent]
        kind = "command"
        model = "m"
        command = ["./agent.sh", "--fast"]

        [sandbox]
        dockerfile = "Dockerfile"
        build_context = ".."
        memory = "8g"
        cpus = 2
        pids_limit = 256
        gpus = "all"
        env = ["HF_TOKEN"]

        [run]
        max_iterations = 5
        max_hours = 1.5
        max_cost = 2
        target_score = 0
        plateau_threshold = 3
        max_restarts = 1
        iteration_timeout = 60
        verify = false
        min_improvement = 0.01
        """,
    )
    cfg = config.load(lab / "lab.toml")
    root = lab.resolve()
    assert cfg.maximize and cfg.better(2.0, 1.0) and not cfg.better(1.0, 2.0)
    assert cfg.pipeline_dir == root / "src" and cfg.results_file == root / "out" / "results.tsv"
    assert cfg.backend_module == root / "be" / "backend.py" and cfg.eval_timeout == 12.5
    assert cfg.host_service == config.HostService(["python", "daemon.py", "--port", "9100"], 9100)
    assert cfg.agent_command == ["./agent.sh", "--fast"] and cfg.agent_model == "m"
    assert cfg.dockerfile == root / "Dockerfile" and cfg.build_context == root.parent
    assert (cfg.memory, cfg.cpus, cfg.pids_limit, cfg.gpus, cfg.env) == ("8g", "2", 256, "all", ["HF_TOKEN"])
    # 0 is a legitimate target, not "unset"
    assert cfg.run.target_score == 0.0 and cfg.run.verify is False and cfg.run.min_improvement == 0.01


def test_min_improvement_margin_in_both_directions(tmp_path: Path) -> None:
    lab = write_lab(tmp_path / "lab")
    cfg = config.load(lab / "lab.toml")
    assert cfg.better(0.8, 1.0, margin=0.1) and not cfg.better(0.95, 1.0, margin=0.1)
    assert cfg.better(5.0, None)


@pytest.mark.parametrize(
    ("toml", "needles"),
    [
        ('[lab]\nnmae = "x"\n[backend]\nclass = "B"\n', ["[lab]", "'nmae'", "did you mean 'name'"]),
        ('[backend]\nclass = "B"\neval_timout = 5\n', ["[backend]", "'eval_timout'", "eval_timeout"]),
        ('[backend]\nclass = "B"\n[runn]\nmax_iterations = 3\n', ["unknown table [runn]", "run"]),
        ('[backend]\nclass = "B"\neval_timeout = "ten"\n', ["[backend] eval_timeout", "must be a number"]),
        ('[backend]\nclass = "B"\n[run]\nverify = 1\n', ["[run] verify", "true or false"]),
        ('[backend]\nclass = "B"\n[run]\nmax_iterations = true\n', ["[run] max_iterations", "an integer"]),
        ('[lab]\nname = "x"\n', ["[backend] class is required"]),
        ('[lab]\nname = "x"\n[backend]\nmodule = "backend.py"\n', ["[backend] class is required"]),
        ('[lab\nname = "x"\n', ["invalid TOML"]),
        ('[backend]\nclass = "B"\n[lab]\ndirection = "down"\n', ["[lab] direction", "minimize"]),
        ('[backend]\nclass = "B"\neval_timeout = 0\n', ["[backend] eval_timeout", "positive"]),
        ('[backend]\nclass = "B"\n[sandbox]\nenv = [1]\n', ["[sandbox] env", "list of strings"]),
        ('stray = 1\n[backend]\nclass = "B"\n', ["'stray'", "inside a table"]),
    ],
)
def test_config_errors_are_one_line_and_name_file_table_key(tmp_path: Path, toml: str, needles: list[str]) -> None:
    lab = write_lab(tmp_path / "lab", toml=toml)
    with pytest.raises(ArlError) as info:
        config.load(lab / "lab.toml")
    assert str(lab / "lab.toml") in str(info.value)
    # the same, through the command line: one line, exit 1, no traceback, names the file
    proc = arl("eval", "--data", "data", cwd=lab, check=False)
    line = one_line_error(proc, str(lab / "lab.toml"), *needles)
    assert "\n" not in line


def test_debug_shows_a_traceback(tmp_path: Path) -> None:
    lab = write_lab(tmp_path / "lab", toml='[lab]\nnmae = "x"\n[backend]\nclass = "B"\n')
    proc = arl("--debug", "results", cwd=lab, check=False)
    assert proc.returncode != 0
    assert "Traceback" in proc.stderr and "nmae" in proc.stderr


def test_not_utf8_is_a_clear_error(tmp_path: Path) -> None:
    lab = write_lab(tmp_path / "lab")
    (lab / "lab.toml").write_bytes(b'[lab]\nname = "\xff"\n[backend]\nclass = "B"\n')
    one_line_error(arl("results", cwd=lab, check=False), "not UTF-8")


# ---- discovery -------------------------------------------------------------------------------------------------


def test_lab_found_by_walking_up_and_by_lab_flag(tmp_path: Path) -> None:
    lab = write_lab(tmp_path / "lab")
    deep = lab / "pipeline" / "a" / "b"
    deep.mkdir(parents=True)
    assert config.find_lab(start=deep) == (lab / "lab.toml").resolve()
    # commands run from a sub-folder resolve paths against lab.toml, not the current folder
    proc = arl("eval", "--data", str(lab / "data"), "--json", cwd=deep)
    assert '"score": 1.5' in proc.stdout
    # --lab takes the folder or the file, from anywhere
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    for given in (str(lab), str(lab / "lab.toml")):
        proc = arl("eval", "--lab", given, "--data", str(lab / "data"), "--json", cwd=elsewhere)
        assert '"score": 1.5' in proc.stdout
    one_line_error(arl("results", cwd=elsewhere, check=False), "no lab.toml", "arl init")
    one_line_error(arl("results", "--lab", str(elsewhere), cwd=elsewhere, check=False), "no lab.toml")


def test_lab_flag_before_the_command(tmp_path: Path) -> None:
    lab = write_lab(tmp_path / "lab")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    proc = arl("--lab", str(lab), "results", "--format", "json", cwd=elsewhere, check=False)
    assert proc.returncode == 0, proc.stderr


def test_explicit_lab_via_environment(tmp_path: Path) -> None:
    lab = write_lab(tmp_path / "lab")
    other = tmp_path / "other"
    other.mkdir()
    proc = arl("results", "--format", "json", cwd=other, env={"ARL_LAB": str(lab)})
    assert proc.stdout.strip() == "[]"


@pytest.mark.parametrize(
    "name",
    [
        "quote \" and ' apostrophe",
        "spaces  and\ttab",
        "back\\slash \\n not a newline",
        "new\nline and\r\ncrlf",
        "del\x7f and \x01 \x1f controls",
        "non-ASCII: café ünïcödé 実験 🧪",
        "[lab]\nname = 'injected'",
        '"""triple"""',
    ],
)
def test_init_name_with_any_characters_round_trips(repo: Path, name: str) -> None:
    arl("init", "--name", name, cwd=repo)
    text = (repo / "lab.toml").read_text(encoding="utf-8")
    assert "\x7f" not in text
    cfg = config.load(repo / "lab.toml")
    assert cfg.name == name
    # and the example's lab.toml, which is rewritten rather than filled in
    sub = repo / "ex"
    sub.mkdir()
    arl("init", "--example", "curve-fit", "--name", name, cwd=sub)
    assert config.load(sub / "lab.toml").name == name
    assert config.load(sub / "lab.toml").backend_class == "CurveFitBackend"


def test_pipeline_dir_with_odd_characters(repo: Path) -> None:
    arl("init", "--pipeline-dir", 'my "src" dir', cwd=repo)
    cfg = config.load(repo / "lab.toml")
    assert cfg.pipeline_dir == repo.resolve() / 'my "src" dir'
    assert cfg.pipeline_dir.is_dir()


def test_python_api_import_names() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", "from arl import EvalBackend, EvalResult, SampleResult; "
         "r = EvalResult(1.0); s = SampleResult('a', 2.0); "
         "print(r.metrics, r.sample_results, s.error, s.extra)"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert proc.stdout.strip() == "{} [] None {}"


def test_a_state_written_before_slots_is_read_as_slot_0s(tmp_path: Path) -> None:
    """An arl without slots kept its agent's bookkeeping at the top of state.json: it moves under slots["0"] on
    read (so that a run it left is repaired), and the run's own keys, its total cost among them, stay where they are."""
    from arl.runstate import slots, state

    cfg = config.load(write_lab(tmp_path / "lab") / "lab.toml")
    old = {"active": True, "run": 3, "cost": 1.25, "seq": 7, "container": "arl-old-agent1", "cost_closed": 0.5}
    old |= {"retry_at": 99.0, "settings": {"agent": "offline"}}
    cfg.state_dir.mkdir(parents=True)
    (cfg.state_dir / "state.json").write_text(json.dumps(old))
    st = state.load(cfg)
    assert st["slots"] == {"0": {"seq": 7, "container": "arl-old-agent1", "cost_closed": 0.5, "retry_at": 99.0}}
    assert st["cost"] == 1.25 and st["run"] == 3 and slots.count(st) == 1
    assert slots.of(st, 0)["seq"] == 7
