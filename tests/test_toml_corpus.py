"""Malformed lab.toml files: each is one `arl: error:` line (exit 1, no traceback) naming the file, the table
and the key. Complements tests/test_config.py (typos of keys and tables, wrong types of a few keys), whose
helpers it reuses: here every table and the less travelled shapes of TOML (inline tables, dotted keys)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import arl, make_repo
from tests.test_config import one_line_error, write_lab

B = '[backend]\nclass = "B"\n'
HS = B + '[backend.host_service]\ncommand = "python daemon.py"\n'

# (case id, lab.toml, [table], key, more words the line must hold). `arl results` and `arl eval` alternate.
CASES: list[tuple[str, str, str, str, list[str]]] = [
    ("lab_name_int", "[lab]\nname = 5\n" + B, "[lab]", "name", ["must be a string", "integer"]),
    ("lab_direction_int", "[lab]\ndirection = 1\n" + B, "[lab]", "direction", ["must be a string"]),
    ("lab_pipeline_list", '[lab]\npipeline_dir = ["src"]\n' + B, "[lab]", "pipeline_dir", ["a list"]),
    ("lab_results_bool", "[lab]\nresults_file = true\n" + B, "[lab]", "results_file", ["true or false"]),
    ("backend_module_int", '[backend]\nclass = "B"\nmodule = 3\n', "[backend]", "module", ["must be a string"]),
    ("backend_class_list", '[backend]\nclass = ["B"]\n', "[backend]", "class", ["must be a string", "list"]),
    (
        "backend_module_missing",
        '[backend]\nclass = "B"\nmodule = "nope.py"\n',
        "[backend]",
        "module",
        ["nope.py", "does not exist"],
    ),
    (
        "backend_inline_table",
        'backend = { class = "B", eval_timeout = -1 }\n',
        "[backend]",
        "eval_timeout",
        ["positive"],
    ),
    ("host_service_port_string", HS + 'port = "9100"\n', "[backend.host_service]", "port", ["an integer"]),
    ("host_service_port_bool", HS + "port = true\n", "[backend.host_service]", "port", ["true or false"]),
    ("host_service_port_range", HS + "port = 70000\n", "[backend.host_service]", "port", ["65535"]),
    (
        "host_service_port_inline",
        B + 'host_service = { command = "x", port = 0 }\n',
        "[backend.host_service]",
        "port",
        ["65535"],
    ),
    (
        "host_service_no_command",
        B + "[backend.host_service]\nport = 9100\n",
        "[backend.host_service]",
        "command",
        ["required"],
    ),
    (
        "host_service_empty_command",
        B + '[backend.host_service]\ncommand = ""\nport = 9100\n',
        "[backend.host_service]",
        "command",
        ["empty"],
    ),
    (
        "host_service_command_ints",
        B + '[backend.host_service]\ncommand = ["python", 1]\nport = 9100\n',
        "[backend.host_service]",
        "command",
        ["list of strings"],
    ),
    (
        "host_service_unknown_key",
        HS + 'port = 9100\nhost = "0.0.0.0"\n',
        "[backend.host_service]",
        "'host'",
        ["unknown key"],
    ),
    ("agent_kind_int", B + "[agent]\nkind = 1\n", "[agent]", "kind", ["must be a string"]),
    ("agent_model_int", B + "[agent]\nmodel = 4\n", "[agent]", "model", ["must be a string"]),
    ("agent_command_ints", B + "[agent]\ncommand = [1, 2]\n", "[agent]", "command", ["list of strings"]),
    ("agent_command_typo", B + '[agent]\ncomand = ["./a.sh"]\n', "[agent]", "'comand'", ["did you mean 'command'"]),
    ("sandbox_memory_int", B + "[sandbox]\nmemory = 8\n", "[sandbox]", "memory", ["must be a string"]),
    ("sandbox_pids_float", B + "[sandbox]\npids_limit = 1.5\n", "[sandbox]", "pids_limit", ["an integer"]),
    ("sandbox_cpus_bool", B + "[sandbox]\ncpus = true\n", "[sandbox]", "cpus", ["true or false"]),
    ("sandbox_env_string", B + '[sandbox]\nenv = "HF_TOKEN"\n', "[sandbox]", "env", ["a list"]),
    ("sandbox_gpus_list", B + '[sandbox]\ngpus = ["all"]\n', "[sandbox]", "gpus", ["must be a string"]),
    # The workspace limits (the host imports at most this much of an agent's work)
    ("sandbox_max_depth_zero", B + "[sandbox]\nmax_depth = 0\n", "[sandbox]", "max_depth", ["positive"]),
    ("sandbox_max_depth_float", B + "[sandbox]\nmax_depth = 6.5\n", "[sandbox]", "max_depth", ["an integer"]),
    ("sandbox_max_files_neg", B + "[sandbox]\nmax_files = -1\n", "[sandbox]", "max_files", ["positive"]),
    ("sandbox_max_files_str", B + '[sandbox]\nmax_files = "10k"\n', "[sandbox]", "max_files", ["an integer"]),
    ("sandbox_max_mb_zero", B + "[sandbox]\nmax_workspace_mb = 0\n", "[sandbox]", "max_workspace_mb", ["positive"]),
    ("sandbox_max_mb_inf", B + "[sandbox]\nmax_workspace_mb = inf\n", "[sandbox]", "max_workspace_mb", ["finite"]),
    ("sandbox_subtable", B + "[sandbox.extra]\nmemory = 1\n", "[sandbox]", "'extra'", ["unknown key"]),
    ("run_max_hours_negative", B + "[run]\nmax_hours = -1\n", "[run]", "max_hours", ["negative"]),
    ("run_target_score_word", B + '[run]\ntarget_score = "high"\n', "[run]", "target_score", ["a number"]),
    ("run_repeats_zero", B + "[run]\nrepeats = 0\n", "[run]", "repeats", ["zero"]),
    (
        "run_iteration_timeout_word",
        B + '[run]\niteration_timeout = "fast"\n',
        "[run]",
        "iteration_timeout",
        ["a number"],
    ),
    ("run_min_improvement_negative", B + "[run]\nmin_improvement = -0.5\n", "[run]", "min_improvement", ["negative"]),
    ("run_max_restarts_float", B + "[run]\nmax_restarts = 2.5\n", "[run]", "max_restarts", ["an integer"]),
    ("run_verify_string", B + '[run]\nverify = "yes"\n', "[run]", "verify", ["true or false"]),
    ("run_max_cost_units", B + '[run]\nmax_cost = "5 USD"\n', "[run]", "max_cost", ["a number"]),
    ("run_dotted_key", 'run.max_iterations = "x"\n' + B, "[run]", "max_iterations", ["an integer"]),
    ("run_table_case", B + "[Run]\nmax_cost = 5\n", "[Run]", "run", ["unknown table"]),
]


@pytest.mark.parametrize(("toml", "table", "key", "words"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_malformed_lab_toml_is_one_line_naming_file_table_and_key(
    tmp_path: Path, toml: str, table: str, key: str, words: list[str]
) -> None:
    lab = write_lab(tmp_path / "lab", toml=toml)
    # A file the lab names but that is missing is found when it is needed (eval), not when lab.toml is read.
    commands = [["eval", "--data", "data"]] + ([] if key == "module" and "nope.py" in toml else [["results"]])
    for command in commands:
        proc = arl(*command, cwd=lab, check=False)
        one_line_error(proc, str(lab / "lab.toml"), table, key, *words)


def test_the_corpus_is_large_and_has_no_duplicates() -> None:
    assert len(CASES) >= 15
    assert len({c[0] for c in CASES}) == len(CASES)
    assert len({c[1] for c in CASES}) == len(CASES)


# Bugs found by the corpus (arl/config.py, arl/agents): each case states what the error should be.
XFAILS: list[tuple[str, str, str, str, str]] = [
    (
        "eval_timeout_nan",
        B + "eval_timeout = nan\n",
        "[backend]",
        "eval_timeout",
        "nan passes `<= 0`; an evaluation with a NaN timeout is never limited",
    ),
    (
        "eval_timeout_inf",
        B + "eval_timeout = inf\n",
        "[backend]",
        "eval_timeout",
        "inf is accepted; the verification's outer limit becomes inf",
    ),
    ("max_hours_nan", B + "[run]\nmax_hours = nan\n", "[run]", "max_hours", "nan passes `< 0`; never stops"),
    (
        "iteration_timeout_nan",
        B + "[run]\niteration_timeout = nan\n",
        "[run]",
        "iteration_timeout",
        "nan passes `< 0`; the wait step's deadline is NaN",
    ),
    (
        "min_improvement_nan",
        B + "[run]\nmin_improvement = nan\n",
        "[run]",
        "min_improvement",
        "nan passes `< 0`; no keep can ever beat the best",
    ),
    (
        "target_score_nan",
        B + "[run]\ntarget_score = nan\n",
        "[run]",
        "target_score",
        "nan is accepted as a target that can never be reached",
    ),
    (
        "host_service_not_a_table",
        B + "host_service = 5\n",
        "[backend]",
        "host_service must be a table",
        "says `unknown key 'host_service'` for a documented key that is merely not a table",
    ),
    (
        "run_array_of_tables",
        "[[run]]\nmax_iterations = 3\n" + B,
        "[run]",
        "run",
        "says `top-level key 'run' must be inside a table such as [lab]` for [[run]]",
    ),
    (
        "duplicate_key",
        B + "[run]\nmax_iterations = 3\nmax_iterations = 4\n",
        "[run]",
        "max_iterations",
        "tomllib's `Cannot overwrite a value (at line 5, column 19)` names neither the table nor the key",
    ),
    (
        "pipeline_is_the_lab",
        '[lab]\npipeline_dir = "."\n' + B,
        "[lab]",
        "pipeline_dir",
        "accepted: lab.toml and backend.py become part of the pipeline, writable by the agent, and the loop's "
        "`git clean` of the pipeline reaches the user's untracked files beside them",
    ),
]


@pytest.mark.parametrize(
    ("toml", "table", "key"),
    [pytest.param(*c[1:4]) for c in XFAILS],
    ids=[c[0] for c in XFAILS],
)
def test_gaps_found_by_the_corpus_now_closed(tmp_path: Path, toml: str, table: str, key: str) -> None:
    lab = write_lab(tmp_path / "lab", toml=toml)
    one_line_error(arl("results", cwd=lab, check=False), str(lab / "lab.toml"), table, key)


def test_agent_kind_typo_names_the_file_table_and_key(tmp_path: Path) -> None:
    lab = write_lab(make_repo(tmp_path / "repo"), toml=B + '[agent]\nkind = "cluade"\n')
    proc = arl("run", "--data", "data", "--dry-run", cwd=lab, check=False)
    one_line_error(proc, str(lab / "lab.toml"), "[agent]", "kind")
