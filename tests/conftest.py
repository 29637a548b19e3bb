"""Shared fixtures: real git repositories, and the real Docker engine (skipped only when none answers)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

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


@pytest.fixture
def example_lab(repo: Path) -> Path:
    """The curve-fit example, scaffolded and committed in a fresh repository."""
    arl("init", "--example", "curve-fit", cwd=repo)
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "lab")
    return repo


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


@pytest.fixture
def lab(example_lab: Path, base_image: str) -> Iterator[Path]:
    """The example lab, for a run on the real engine; the lab's containers are removed after the test, whatever
    it left (its own teardown is what it checks)."""
    yield example_lab
    from .loophelpers import cleanup_containers  # loophelpers imports this module

    cleanup_containers(example_lab)


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
