"""Shared fixtures: real git repositories, and the real Docker engine (skipped only when none answers)."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.slurm_cluster import ClusterFactory, cluster_factory, missing_daemons

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent

# `make test` runs pytest inside make: the makes the tests start must behave as a user's own top-level make
# (no "Entering directory" lines, no flags or variables inherited from arl's Makefile).
for _var in ("MAKELEVEL", "MAKEFLAGS", "MFLAGS", "MAKEOVERRIDES"):
    os.environ.pop(_var, None)


def run(
    cmd: list[str],
    cwd: Path | None = None,
    check: bool = True,
    env: dict[str, str] | None = None,
    timeout: float = 600,
    input: str | None = None,
) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", **(env or {})}
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=full_env, timeout=timeout, input=input)
    if check and proc.returncode != 0:
        raise AssertionError(f"{cmd} exited {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
    return proc


def arl(*args: str, cwd: Path, check: bool = True, **kw: object) -> subprocess.CompletedProcess[str]:
    return run([str(BIN / "arl"), *args], cwd=cwd, check=check, **kw)  # type: ignore[arg-type]


def git(repo: Path, *args: str) -> str:
    return run(["git", "-C", str(repo), *args]).stdout


def make_repo(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "-q", "-b", "main")
    git(path, "config", "user.email", "tester@example.com")
    git(path, "config", "user.name", "Tester")
    return path


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "repo")


def docker_answers() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        return (
            subprocess.run(
                ["docker", "version", "--format", "{{.Server.Version}}"], capture_output=True, timeout=20
            ).returncode
            == 0
        )
    except subprocess.TimeoutExpired:
        return False


def skip_unless_required(reason: str) -> None:
    """Skip for a reason of this machine (no PyPI, no debootstrap, code edited mid-test); under CI
    (ARL_REQUIRE_DOCKER=1) the same reason is a failure: a skip there would hide a test that must run."""
    if os.environ.get("ARL_REQUIRE_DOCKER") == "1":
        pytest.fail(f"{reason} (ARL_REQUIRE_DOCKER=1: this test must run here)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def docker_engine() -> None:
    if not docker_answers():
        skip_unless_required("no Docker engine answers")


@pytest.fixture
def slurm_cluster() -> Iterator[ClusterFactory]:
    """A factory: `slurm_cluster(gpus=4)` starts a private single-node SLURM cluster (tests/slurm_cluster.py);
    every cluster it started is stopped at teardown. Skips without munged/slurmctld/slurmd or root."""
    missing = missing_daemons()
    if missing:
        skip_unless_required(f"SLURM test cluster: {', '.join(missing)} missing (sudo apt-get install slurm-wlm munge)")
    if os.geteuid() != 0:
        skip_unless_required("SLURM test cluster: slurmd must run as root")
    yield from cluster_factory()


@pytest.fixture(scope="session")
def base_image(docker_engine: None) -> str:
    """arl-agent-base, built from a debootstrap Debian base when the engine has nothing (cached in the engine)."""
    from arl.sandbox import images

    return images.ensure_base(base_from=os.environ.get("ARL_TEST_BASE_FROM", "debootstrap"))


# ---- labs: every lab of the tests is made by new_lab(), through `lab`, `example_lab` or `make_lab(**options)` ----


def busy_repo(path: Path) -> Path:
    """A repository with work of its own: a root Makefile, a staged file, an unstaged change, an untracked file."""
    repo = make_repo(path)
    (repo / "Makefile").write_text("all:\n\t@echo the user's own build\nDATA = user-data\n")
    (repo / "notes.txt").write_text("v1\n")
    git(repo, "add", "Makefile", "notes.txt")
    git(repo, "commit", "-qm", "the user's project")
    (repo / "staged.txt").write_text("staged work\n")
    git(repo, "add", "staged.txt")
    (repo / "notes.txt").write_text("v2, not staged\n")
    (repo / "scratch.txt").write_text("untracked\n")
    return repo


def own_work_intact(repo: Path) -> None:
    """The busy repository's own work as busy_repo left it: staged, unstaged and untracked."""
    status = git(repo, "status", "--porcelain", "--", "staged.txt", "notes.txt", "scratch.txt", "Makefile")
    assert sorted(status.splitlines()) == [" M notes.txt", "?? scratch.txt", "A  staged.txt"], status
    assert (repo / "notes.txt").read_text() == "v2, not staged\n"


def new_lab(
    repo: Path,
    *,
    example: str | None = "curve-fit",
    init: tuple[str, ...] = (),
    folder: str = "",
    busy: bool = False,
    own_name: bool = False,
    settings: dict[str, dict[str, Any]] | None = None,
    files: dict[str, str] | None = None,
    agents: tuple[str, ...] = (),
    commit: bool = True,
) -> Path:
    """A lab as a user makes one: `arl init [--example EXAMPLE] INIT...` in the repository `repo` (made here; with
    `busy`, one holding work of its own) or in its sub-folder `folder`; then `settings` ({table: {key: value}}) set
    in lab.toml, `files` (path in the lab -> text) written, the scripts `agents` of tests/agents/ copied in, and
    with `own_name` a lab name of its own (container names and refs derive from it: nothing can meet another
    lab's on the engine). With `commit`, the lab's files are committed (only those: a busy repository's own work
    stays as it was)."""
    top = busy_repo(repo) if busy else make_repo(repo)
    lab = top / folder if folder else top
    lab.mkdir(exist_ok=True)
    arl("init", *(["--example", example] if example else []), *init, cwd=lab)
    for table, values in (settings or {}).items():
        for key, value in values.items():
            set_toml(lab, table, key, value)
    if own_name:
        set_toml(lab, "lab", "name", f"{example or 'lab'}-{secrets.token_hex(3)}")
    for rel, text in (files or {}).items():
        (lab / rel).parent.mkdir(parents=True, exist_ok=True)
        (lab / rel).write_text(text)
    for script in agents:
        shutil.copy(ROOT / "tests" / "agents" / script, lab / script)
    if commit:
        git(lab, "add", "--", ".")
        git(lab, "commit", "-qm", "lab", "--", ".")
    return lab


LabMaker = Callable[..., Path]


@pytest.fixture
def make_lab(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LabMaker]:
    """`make_lab(image=..., owner=..., **options of new_lab)`: a lab under the test's folder (the first at
    tmp_path/repo, the `repo` fixture's folder). `image` names the fixture of the image its agents run on
    (base_image, codex_image, claude_image; None: a lab that runs no agent); `owner` (a uid) puts it outside
    root's private tmp, owned by that user. After the test the containers of every lab it made are removed,
    whatever the test left (its own teardown is what it checks)."""
    made: list[Path] = []
    tops: list[Path] = []

    def make(*, image: str | None = "base_image", owner: int | None = None, **options: Any) -> Path:
        if image:
            request.getfixturevalue(image)
        if owner is None:
            top = tmp_path
        else:
            top = Path(tempfile.mkdtemp(prefix="arl-lab-"))
            top.chmod(0o755)
            tops.append(top)
        lab = new_lab(top / ("repo" if not made else f"repo{len(made) + 1}"), **options)
        if owner is not None:
            (top / "home").mkdir()
            subprocess.run(["chown", "-R", f"{owner}:{owner}", str(top)], check=True)
        made.append(lab)
        return lab

    yield make
    from .loophelpers import cleanup_containers  # loophelpers imports this module

    for lab in made:
        cleanup_containers(lab)
    for top in tops:
        shutil.rmtree(top, ignore_errors=True)


@pytest.fixture
def lab(request: pytest.FixtureRequest, make_lab: LabMaker) -> Path:
    """The test's lab: the curve-fit example, committed, on the engine. A module or a test that needs another lab
    says which with the `lab` mark, whose keywords are make_lab's: `pytestmark = pytest.mark.lab(image=
    "codex_image", own_name=True)`, `@pytest.mark.lab(image=None, folder="research", busy=True)`."""
    mark = request.node.get_closest_marker("lab")
    return make_lab(**(mark.kwargs if mark else {}))


@pytest.fixture
def example_lab(make_lab: LabMaker) -> Path:
    """The curve-fit example, committed, for a test that runs no agent (no engine needed)."""
    return make_lab(image=None)


def set_toml(lab: Path, table: str, key: str, value: Any) -> None:
    """Edit one key of lab.toml (tests only), keeping it valid TOML."""
    text = (lab / "lab.toml").read_text().splitlines()
    out, in_table, done = [], False, False
    for line in text:
        if line.strip().startswith("["):
            if in_table and not done:
                out.append(f"{key} = {json.dumps(value)}")
                done = True
            in_table = line.strip() == f"[{table}]"
        if in_table and line.split("=")[0].strip() == key:
            line, done = f"{key} = {json.dumps(value)}", True
        out.append(line)
    if not done:
        if not in_table:
            out.append(f"[{table}]")
        out.append(f"{key} = {json.dumps(value)}")
    (lab / "lab.toml").write_text("\n".join(out) + "\n")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "lab(**options): the lab the `lab` fixture makes (make_lab's keywords)")


# Suites that print one summary table at the end of the run (hostile agents, faults...): add rows with
# `summary_table("title", ["col", ...]).append([...])`; pytest prints every table in its terminal summary.
_TABLES: dict[str, tuple[list[str], list[list[object]]]] = {}


def summary_table(title: str, headers: list[str]) -> list[list[object]]:
    return _TABLES.setdefault(title, (headers, []))[1]


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    from tabulate import tabulate

    for title, (headers, table_rows) in _TABLES.items():
        if table_rows:
            terminalreporter.write_sep("=", title)
            terminalreporter.write_line(tabulate(table_rows, headers=headers))


def pypi_reachable() -> bool:
    try:
        urllib.request.urlopen("https://pypi.org/simple/claude-agent-sdk/", timeout=10).close()
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False
    return True
