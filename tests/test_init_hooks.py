"""`arl init` and the git hooks: scaffolding, refusals, careful installation, and what the hooks enforce."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from arl.config import config
from arl.history.format import COLUMNS, header_line
from tests.conftest import BIN, ROOT, arl, git, make_repo, run
from tests.test_config import one_line_error

MAKE_TARGETS = ("research", "eval", "diagnose", "results", "plot", "image", "status", "guard", "on-keep")


def _is_executable(p: Path) -> bool:
    return p.is_file() and bool(p.stat().st_mode & stat.S_IXUSR) and os.access(p, os.X_OK)


def _commit(repo: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return run(["git", "-C", str(repo), "commit", "-q", *args], check=False, env=env)


@pytest.fixture
def live_pid() -> Iterator[int]:
    """A live process whose pid can stand for an active run's pid."""
    proc = subprocess.Popen(["sleep", "300"])
    try:
        yield proc.pid
    finally:
        proc.kill()
        proc.wait()


def test_init_example_scaffolds_a_complete_lab(repo: Path) -> None:
    proc = arl("init", "--example", "curve-fit", cwd=repo)
    assert "curve-fit" in proc.stdout
    for name in ("lab.toml", "backend.py", "AGENT.md", "Makefile", "results.tsv", ".gitignore"):
        assert (repo / name).is_file(), name
    assert (repo / "results.tsv").read_text() == header_line() == "\t".join(COLUMNS) + "\n"
    assert ".arl/" in (repo / ".gitignore").read_text().splitlines()
    assert len(list((repo / "data").glob("*.csv"))) >= 3
    assert (repo / "pipeline" / "model.py").is_file()
    for hook in ("pre-commit", "post-commit"):
        path = repo / ".git" / "hooks" / hook
        assert _is_executable(path), hook
        assert "arl-managed-hook" in path.read_text()
    # .arl/ really is ignored by git, and the lab's own files are not
    assert run(["git", "-C", str(repo), "check-ignore", "-q", ".arl/state.json"], check=False).returncode == 0
    assert run(["git", "-C", str(repo), "check-ignore", "-q", "lab.toml"], check=False).returncode == 1
    cfg = config.load(repo / "lab.toml")
    assert cfg.name == "curve-fit" and cfg.backend_class == "CurveFitBackend" and cfg.agent_kind == "offline"
    # the Makefile has every documented target, and `make guard` / `make on-keep` are no-ops by default
    makefile = (repo / "Makefile").read_text()
    for target in MAKE_TARGETS:
        assert f"\n{target}:" in makefile, target
    for target in ("guard", "on-keep"):
        assert run(["make", "-s", "-C", str(repo), target]).stdout == ""
    # a commit of the whole lab goes through the installed hooks
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "lab")
    assert git(repo, "status", "--porcelain") == ""


def test_list_examples(repo: Path) -> None:
    out = arl("init", "--list-examples", cwd=repo).stdout
    assert out.split()[0] == "curve-fit" and "mean absolute error" in out
    assert not (repo / "lab.toml").exists()
    one_line_error(arl("init", "--example", "nope", cwd=repo, check=False), "no example named 'nope'", "curve-fit")


def test_plain_init(repo: Path) -> None:
    lab = repo / "labs" / "first"
    lab.mkdir(parents=True)
    arl("init", "--name", "first", "--pipeline-dir", "src", cwd=lab)
    cfg = config.load(lab / "lab.toml")
    assert cfg.name == "first" and cfg.pipeline_dir == lab.resolve() / "src" and cfg.pipeline_dir.is_dir()
    assert cfg.backend_class == "PipelineBackend"
    for name in ("backend.py", "AGENT.md", "Makefile"):
        assert (lab / name).is_file()
    assert (lab / "results.tsv").read_text() == header_line()
    # the hooks go to the repository's hooks folder, wherever the lab sits in it
    pre, post = ((repo / ".git" / "hooks" / h).read_text() for h in ("pre-commit", "post-commit"))
    assert "arl-managed-hook" in pre and "@" not in pre.replace("$@", "")  # rendered: no placeholder left
    assert pre.replace("pre-commit", "post-commit") == post  # one template: only the hook's name differs
    # the template backend runs `main.py INPUTS OUTPUTS` and scores each output against the sample's expected.json
    (lab / "src" / "main.py").write_text(
        "import json, pathlib, sys\n"
        "ins, outs = map(pathlib.Path, sys.argv[1:3])\n"
        "for s in ins.iterdir():\n"
        "    x = json.loads((s / 'input.json').read_text())\n"
        "    (outs / s.name / 'output.json').write_text(json.dumps(x * 2))\n"
    )
    for name, x, expected in (("a", 1, 2), ("b", 2, 4), ("c", 3, 7), ("d", 4, 8)):
        (lab / "data" / name).mkdir(parents=True)
        (lab / "data" / name / "input.json").write_text(json.dumps(x))
        (lab / "data" / name / "expected.json").write_text(json.dumps(expected))
    out = json.loads(arl("eval", "--data", "data", "--json", cwd=lab).stdout)
    assert out["score"] == 0.25  # c's answer differs


def test_init_refuses_outside_a_git_repository(tmp_path: Path) -> None:
    folder = tmp_path / "plain"
    folder.mkdir()
    proc = arl("init", cwd=folder, check=False, env={"GIT_CEILING_DIRECTORIES": str(tmp_path)})
    one_line_error(proc, "not inside a git repository", "git init")
    assert list(folder.iterdir()) == []


def test_init_refuses_to_overwrite_without_force(repo: Path) -> None:
    arl("init", "--example", "curve-fit", cwd=repo)
    (repo / "lab.toml").write_text((repo / "lab.toml").read_text() + "# my edit\n")
    proc = arl("init", "--example", "curve-fit", cwd=repo, check=False)
    one_line_error(proc, "lab.toml", "already exist", "--force")
    assert "# my edit" in (repo / "lab.toml").read_text()
    # the plain scaffold over an example refuses as well
    one_line_error(arl("init", cwd=repo, check=False), "--force")
    # --force overwrites the scaffolding but never the experiment history
    history = header_line() + "0\t1\t2024-01-01T00:00:00Z\tbaseline\t3.2\t\t\t3.2\t\t\t\t\t{}\n"
    (repo / "results.tsv").write_text(history)
    arl("init", "--example", "curve-fit", "--force", cwd=repo)
    assert "# my edit" not in (repo / "lab.toml").read_text()
    assert "# my edit" in (repo / "lab.toml.orig").read_text()  # replaced, never lost
    assert (repo / "results.tsv").read_text() == history
    assert (repo / ".gitignore").read_text().splitlines().count(".arl/") == 1


USER_MAKEFILE = """# my project
CFLAGS = -O2
all: build
build:
\t@echo built
results:
\t@echo my results
.PHONY: all build results
"""


def test_init_beside_a_users_makefile_writes_arl_mk_and_one_include(repo: Path) -> None:
    (repo / "Makefile").write_text(USER_MAKEFILE)
    proc = arl("init", "--example", "curve-fit", cwd=repo)
    assert "arl.mk" in proc.stdout and "include arl.mk" in proc.stdout and "results" in proc.stdout
    text = (repo / "Makefile").read_text()
    assert text.startswith(USER_MAKEFILE) and text.count("include arl.mk") == 1
    mk = (repo / "arl.mk").read_text()
    assert "\nresearch:" in mk and "\nguard:" in mk and "\nresults:" not in mk  # theirs stays theirs
    # the user's Makefile still works as before: its default goal and its own targets
    assert run(["make", "-s", "-C", str(repo)]).stdout == "built\n"
    assert run(["make", "-s", "-C", str(repo), "results"]).stdout == "my results\n"
    # and the lab's targets are there: the hooks' guard and on-keep, the loop
    for target in ("guard", "on-keep"):
        assert run(["make", "-s", "-C", str(repo), target]).stdout == ""
    dry = run(["make", "-n", "-C", str(repo), "research", "DATA=data"]).stdout
    assert 'arl-step preflight --data "data"' in dry
    # --force never overwrites the user's Makefile, and adds no second include
    arl("init", "--example", "curve-fit", "--force", cwd=repo)
    assert (repo / "Makefile").read_text() == text
    assert run(["make", "-s", "-C", str(repo)]).stdout == "built\n"
    # a keep-like commit of the lab goes through the hooks, which run `make guard` through arl.mk
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "lab")


def test_init_refuses_an_existing_arl_mk_without_force(repo: Path) -> None:
    (repo / "Makefile").write_text(USER_MAKEFILE)
    (repo / "arl.mk").write_text("# mine\n")
    one_line_error(arl("init", cwd=repo, check=False), "arl.mk", "--force")
    assert (repo / "Makefile").read_text() == USER_MAKEFILE and (repo / "arl.mk").read_text() == "# mine\n"
    arl("init", "--force", cwd=repo)
    assert (repo / "arl.mk.orig").read_text() == "# mine\n"
    assert (repo / "Makefile").read_text().count("include arl.mk") == 1


def test_lowercase_makefile_is_the_one_extended(repo: Path) -> None:
    (repo / "makefile").write_text(USER_MAKEFILE)
    arl("init", cwd=repo)
    assert not (repo / "Makefile").exists()  # make would never read it: `makefile` comes first
    assert "include arl.mk" in (repo / "makefile").read_text()
    assert run(["make", "-s", "-C", str(repo), "guard"]).returncode == 0


def _quick_start() -> list[str]:
    """The README's commands for using arl in one's own repository, as written."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Using it in your repository", 1)[1]
    block = section.split("```sh\n", 1)[1].split("```", 1)[0]
    return [line.split("  #", 1)[0].strip() for line in block.splitlines() if line.strip()]


@pytest.mark.parametrize("their_makefile", [True, False])
def test_readme_quick_start_commits_only_the_lab_in_a_repository_with_work_in_progress(
    repo: Path, their_makefile: bool
) -> None:
    (repo / "app.py").write_text("print('v1')\n")
    if their_makefile:
        (repo / "Makefile").write_text(USER_MAKEFILE)
    git(repo, "add", "app.py", *(["Makefile"] if their_makefile else []))
    git(repo, "commit", "-qm", "my project")
    (repo / "app.py").write_text("print('v2, half done')\n")  # work in progress, tracked
    (repo / "scratch.txt").write_text("notes\n")  # and untracked
    (repo / "staged.py").write_text("print('staged')\n")
    git(repo, "add", "staged.py")  # and staged, not for the lab's commit
    lines = _quick_start()
    assert not any("add -A" in ln or "add ." in ln or "commit -a" in ln for ln in lines)
    shell = []
    for line in lines:
        if line.startswith("arl init"):
            arl(*shlex.split(line)[1:], cwd=repo)
            (repo / "pipeline" / "main.py").write_text("print(0.5)\n")
        elif line.startswith(("git ", "LAB=")):
            shell.append(line)
    run(["sh", "-c", "\n".join(shell)], cwd=repo)
    committed = set(git(repo, "show", "--name-only", "--format=", "HEAD").split())
    assert {"lab.toml", "backend.py", "AGENT.md", "results.tsv", ".gitignore", "pipeline/main.py"} <= committed
    assert "app.py" not in committed and "scratch.txt" not in committed and "lab.toml.orig" not in committed
    assert "staged.py" not in committed
    assert (repo / "app.py").read_text() == "print('v2, half done')\n"
    status = git(repo, "status", "--porcelain")
    assert " M app.py" in status and "?? scratch.txt" in status and "A  staged.py" in status
    # the lab's Makefile, or the user's with its one include line and arl.mk beside it
    assert {"Makefile", "arl.mk"} <= committed if their_makefile else "Makefile" in committed
    assert git(repo, "show", "HEAD:Makefile").count("include arl.mk") == int(their_makefile)


def test_init_into_a_missing_folder_is_a_clear_error(repo: Path) -> None:
    one_line_error(arl("init", "--lab", str(repo / "nope"), cwd=repo, check=False), "nope", "not a folder")


def test_foreign_hook_is_chained_and_restored(repo: Path) -> None:
    hooks = repo / ".git" / "hooks"
    foreign = '#!/bin/sh\necho ran >> "$(git rev-parse --show-toplevel)/foreign.log"\nexit ${FOREIGN_EXIT:-0}\n'
    (hooks / "pre-commit").write_text(foreign)
    (hooks / "pre-commit").chmod(0o755)
    arl("init", "--example", "curve-fit", cwd=repo)
    assert (hooks / "pre-commit.arl-chained").read_text() == foreign
    assert "arl-managed-hook" in (hooks / "pre-commit").read_text()
    (repo / ".gitignore").write_text(".arl/\nforeign.log\n")
    git(repo, "add", "-A")
    # the foreign hook runs first, and its failure still stops the commit
    bad = _commit(repo, "-m", "lab", env={"FOREIGN_EXIT": "1"})
    assert bad.returncode != 0
    assert (repo / "foreign.log").read_text() == "ran\n"
    git(repo, "commit", "-qm", "lab")
    assert (repo / "foreign.log").read_text() == "ran\nran\n"
    # reinstalling does not chain arl's own hook onto itself
    arl("hooks", "install", cwd=repo)
    assert (hooks / "pre-commit.arl-chained").read_text() == foreign
    # uninstall removes only arl's hooks and puts the foreign one back
    out = arl("hooks", "uninstall", cwd=repo).stdout
    assert "pre-commit" in out and "post-commit" in out
    assert (hooks / "pre-commit").read_text() == foreign
    assert _is_executable(hooks / "pre-commit")
    assert not (hooks / "pre-commit.arl-chained").exists()
    assert not (hooks / "post-commit").exists()
    assert "no arl hooks" in arl("hooks", "uninstall", cwd=repo).stdout
    assert (hooks / "pre-commit").read_text() == foreign


def test_uninstall_leaves_a_foreign_hook_that_was_never_chained(repo: Path) -> None:
    arl("init", "--example", "curve-fit", cwd=repo)
    hooks = repo / ".git" / "hooks"
    (hooks / "post-commit").write_text("#!/bin/sh\n# someone else's, written after arl's\n")
    arl("hooks", "uninstall", cwd=repo)
    assert not (hooks / "pre-commit").exists()
    assert (hooks / "post-commit").read_text() == "#!/bin/sh\n# someone else's, written after arl's\n"


def test_core_hooks_path_inside_the_repository_is_respected(repo: Path) -> None:
    git(repo, "config", "core.hooksPath", ".githooks")
    arl("init", "--example", "curve-fit", cwd=repo)
    for hook in ("pre-commit", "post-commit"):
        assert "arl-managed-hook" in (repo / ".githooks" / hook).read_text()
        assert not (repo / ".git" / "hooks" / hook).exists()
    arl("hooks", "uninstall", cwd=repo)
    assert not (repo / ".githooks" / "pre-commit").exists()


def test_core_hooks_path_outside_the_repository_is_refused_with_a_hint(repo: Path, tmp_path: Path) -> None:
    shared = tmp_path / "shared-hooks"
    shared.mkdir()
    git(repo, "config", "core.hooksPath", str(shared))
    proc = arl("init", "--example", "curve-fit", cwd=repo, check=False)
    one_line_error(proc, "core.hooksPath", "outside this repository", "git config --unset core.hooksPath")
    assert list(shared.iterdir()) == []
    assert not (repo / "lab.toml").exists()  # refused before anything was written
    one_line_error(arl("hooks", "install", cwd=repo, check=False), "core.hooksPath")


@pytest.mark.parametrize("where", [".", "labs/one"])
def test_pre_commit_refuses_pipeline_commits_during_a_run(repo: Path, where: str, live_pid: int) -> None:
    lab = repo / where
    lab.mkdir(parents=True, exist_ok=True)
    arl("init", "--example", "curve-fit", cwd=lab)
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "lab")
    (lab / ".arl").mkdir()
    (lab / ".arl" / "lock").write_text(json.dumps({"pid": live_pid}))
    model = lab / "pipeline" / "model.py"
    model.write_text(model.read_text().replace("OFFSET = 0.0", "OFFSET = 0.5"))
    git(repo, "add", "-A")
    refused = _commit(repo, "-m", "by hand")
    assert refused.returncode != 0
    assert f"pid {live_pid}" in refused.stderr and "ARL_ALLOW_PIPELINE_COMMIT=1" in refused.stderr
    assert "pipeline/model.py" in refused.stderr
    assert "OFFSET = 0.5" not in git(repo, "show", "HEAD:" + str(Path(where, "pipeline", "model.py")))
    # moving a file out of the pipeline touches the pipeline too
    git(repo, "reset", "-q", "--hard")
    git(repo, "mv", str(model), str(lab / "moved.py"))
    assert _commit(repo, "-m", "move").returncode != 0
    git(repo, "reset", "-q", "--hard")
    model.write_text(model.read_text().replace("OFFSET = 0.0", "OFFSET = 0.5"))
    # a commit outside the pipeline goes through while the run is active
    (lab / "NOTES.md").write_text("notes\n")
    git(repo, "add", str(lab / "NOTES.md"))
    assert _commit(repo, "-m", "notes").returncode == 0
    # and the override lets the pipeline commit through
    git(repo, "add", "-A")
    assert _commit(repo, "-m", "forced", env={"ARL_ALLOW_PIPELINE_COMMIT": "1"}).returncode == 0
    assert "OFFSET = 0.5" in git(repo, "show", "HEAD:" + str(Path(where, "pipeline", "model.py")))


def test_pre_commit_ignores_a_stale_lock(example_lab: Path) -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()
    (example_lab / ".arl").mkdir()
    (example_lab / ".arl" / "lock").write_text(json.dumps({"pid": dead.pid}))
    (example_lab / "pipeline" / "model.py").write_text("# changed\n")
    git(example_lab, "add", "-A")
    assert _commit(example_lab, "-m", "after the run").returncode == 0


def _set_target(lab: Path, target: str, recipe: str) -> None:
    text = (lab / "Makefile").read_text()
    start = text.index(f"\n{target}:\n") + 1
    end = text.index("\n\n", start) if "\n\n" in text[start:] else len(text)
    (lab / "Makefile").write_text(text[:start] + f"{target}:\n\t{recipe}" + text[end:])


def test_keep_commit_runs_guard_and_on_keep(example_lab: Path) -> None:
    lab = example_lab
    _set_target(lab, "guard", "@echo guard says no >&2; exit 3")
    _set_target(lab, "on-keep", "@echo kept > on-keep.marker")
    (lab / ".gitignore").write_text(".arl/\non-keep.marker\n")
    git(lab, "add", "-A")
    git(lab, "commit", "-qm", "guards")  # a person's commit: guard is not run
    keep_env = {"ARL_KEEP_LAB": str(lab)}
    (lab / "pipeline" / "model.py").write_text("# agent's change\n")
    git(lab, "add", "-A")
    head = git(lab, "rev-parse", "HEAD")
    vetoed = _commit(lab, "-m", "keep", env=keep_env)
    assert vetoed.returncode != 0
    assert "guard says no" in vetoed.stderr and "vetoed" in vetoed.stderr
    assert git(lab, "rev-parse", "HEAD") == head
    assert not (lab / "on-keep.marker").exists()
    _set_target(lab, "guard", "@true")
    git(lab, "add", "-A")
    assert _commit(lab, "-m", "keep", env=keep_env).returncode == 0
    assert git(lab, "rev-parse", "HEAD") != head
    assert (lab / "on-keep.marker").read_text() == "kept\n"


def test_hooks_survive_a_missing_python(example_lab: Path) -> None:
    """Without arl importable (its virtualenv removed), a person's commit still goes through."""
    (example_lab / "NOTES.md").write_text("x\n")
    git(example_lab, "add", "-A")
    git_dir = os.path.dirname(shutil.which("git") or "/usr/bin/git")
    env = {"ARL_HOOK_PYTHON": "/nonexistent/python", "PATH": f"{git_dir}:/usr/bin:/bin"}
    assert _commit(example_lab, "-m", "notes", env=env).returncode == 0


def test_a_missing_runner_lets_a_person_commit_and_vetoes_a_keep(example_lab: Path) -> None:
    """The hook runs the runner of the arl that installed it, by path. Gone (that arl removed), a person's commit
    goes through; arl's own keep cannot check the lab's guard, so it is vetoed, with the fix named."""
    hook = Path(git(example_lab, "rev-parse", "--path-format=absolute", "--git-path", "hooks").strip()) / "pre-commit"
    text = hook.read_text()
    assert re.search(r"^runner=\S*hookrun\.py$", text, re.M)
    hook.write_text(re.sub(r"^runner=.*$", "runner=/nonexistent/hookrun.py", text, flags=re.M))
    (example_lab / "NOTES.md").write_text("x\n")
    git(example_lab, "add", "-A")
    head = git(example_lab, "rev-parse", "HEAD")
    vetoed = _commit(example_lab, "-m", "keep", env={"ARL_KEEP_LAB": str(example_lab)})
    assert vetoed.returncode != 0 and "arl hooks install" in vetoed.stderr
    assert git(example_lab, "rev-parse", "HEAD") == head
    assert _commit(example_lab, "-m", "notes").returncode == 0


def test_two_repositories_do_not_share_hooks(tmp_path: Path) -> None:
    a, b = make_repo(tmp_path / "a"), make_repo(tmp_path / "b")
    arl("init", "--example", "curve-fit", cwd=a)
    assert not (b / ".git" / "hooks" / "pre-commit").exists()
    assert (a / ".git" / "hooks" / "pre-commit").exists()


def test_arl_mk_leaves_the_users_own_DATA_and_ARGS_alone(repo: Path) -> None:
    (repo / "Makefile").write_text("DATA = user-data\nARGS = --user\nall:\n\t@echo $(DATA) $(ARGS)\n")
    arl("init", "--example", "curve-fit", cwd=repo)
    assert run(["make", "--no-print-directory"], cwd=repo).stdout == "user-data --user\n"  # theirs, as it was

    def preflight(*argv: str) -> str:
        (line,) = [
            ln for ln in run(["make", "-n", "research", *argv], cwd=repo).stdout.splitlines() if "preflight" in ln
        ]
        return line.split("preflight", 1)[1].split("||")[0].strip()

    assert preflight() == '--data "data"'  # the lab's default, not the user's DATA
    assert preflight("DATA=d", "ARGS=--agent offline") == '--data "d" --agent offline'


# How a hook ended as arl wrote it until its runner moved to hooks/hookrun.py: by importing the runner's old path.
EARLIER_HOOK_END = """exec "$ARL_PYTHON" -c '
import sys
try:
    from arl.hookrun import main
except ImportError:
    sys.exit(0)
sys.exit(main(sys.argv[1:]))' "$hook" "$@"
"""


def test_hooks_of_an_earlier_arl_keep_working_and_are_rewritten_at_the_next_run(repo: Path) -> None:
    arl("init", "--example", "curve-fit", cwd=repo)
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "lab")
    hook = repo / ".git" / "hooks" / "pre-commit"
    current = hook.read_text()
    hook.write_text(current[: current.index("runner=")] + EARLIER_HOOK_END)
    # the old path still reaches the runner: a hook that found nothing would let every commit through unchecked
    _set_target(repo, "guard", "@echo guard says no >&2; exit 3")
    git(repo, "add", "-A")
    vetoed = _commit(repo, "-m", "keep", env={"ARL_KEEP_LAB": str(repo)})
    assert vetoed.returncode != 0 and "guard says no" in vetoed.stderr
    git(repo, "reset", "-q", "--hard")
    proc = run([str(BIN / "arl-step"), "preflight", "--data", "data", "--agent", "offline"], cwd=repo)
    assert "rewrote arl's pre-commit hook from the current template" in proc.stderr
    assert hook.read_text() == current
    run([str(BIN / "arl-step"), "teardown"], cwd=repo)
