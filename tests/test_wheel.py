"""templates/ and hooks/ reach the installed package: from a wheel in a fresh virtualenv, and from the editable
install the tests themselves run on."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT, make_repo


def _run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: float = 300) -> str:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=env, timeout=timeout)
    assert proc.returncode == 0, f"{cmd} exited {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    return proc.stdout


def _clean_env(venv_bin: Path) -> dict[str, str]:
    """The fresh venv first on PATH, and nothing that would let it see the checkout or the dev venv."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME", "ARL_LAB")}
    env["PATH"] = f"{venv_bin}{os.pathsep}/usr/bin{os.pathsep}/bin"
    return env


def test_wheel_carries_templates_and_hooks(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    _run([sys.executable, "-m", "build", "--wheel", "--outdir", str(dist), str(ROOT)], cwd=tmp_path)
    wheels = list(dist.glob("arl_research-*.whl"))
    assert len(wheels) == 1
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], cwd=tmp_path)
    vbin = venv / "bin"
    env = _clean_env(vbin)
    _run([str(vbin / "python"), "-m", "pip", "install", "-q", str(wheels[0])], cwd=tmp_path, env=env)

    # arl comes from the venv's site-packages, with its resources inside the package
    where = _run([str(vbin / "python"), "-c", "import arl, arl.util.fsutil as f; "
                  "print(arl.__file__); print(f.resource_dir('templates')); print(f.resource_dir('hooks'))"],
                 cwd=tmp_path, env=env).split()  # fmt: skip
    pkg = Path(where[0]).parent
    assert pkg.is_relative_to(venv) and not pkg.is_relative_to(ROOT)
    assert Path(where[1]) == pkg / "templates" and (pkg / "templates" / "lab" / "lab.toml").is_file()
    assert Path(where[2]) == pkg / "hooks" and (pkg / "hooks" / "hook.tmpl").is_file()
    assert (pkg / "hooks" / "hookrun.py").is_file()  # the runner the hooks name by its path
    # so does the alias that autoresearch-lab backends import
    alias = _run([str(vbin / "python"), "-c", "import autoresearch_lab.harness.backend as b, arl; "
                  "assert b.EvalResult is arl.EvalResult; print(b.__file__)"], cwd=tmp_path, env=env)  # fmt: skip
    assert Path(alias.strip()) == pkg.parent / "autoresearch_lab" / "harness" / "backend.py"

    repo = make_repo(tmp_path / "repo")
    out = _run([str(vbin / "arl"), "init", "--list-examples"], cwd=repo, env=env)
    assert "curve-fit" in out
    _run([str(vbin / "arl"), "init", "--example", "curve-fit"], cwd=repo, env=env)
    for name in ("lab.toml", "backend.py", "AGENT.md", "Makefile", "results.tsv", "pipeline/model.py"):
        assert (repo / name).is_file(), name
    hook = repo / ".git" / "hooks" / "pre-commit"
    assert "arl-managed-hook" in hook.read_text() and str(vbin / "python") in hook.read_text()
    assert str(pkg / "hooks" / "hookrun.py") in hook.read_text()
    result = json.loads(_run([str(vbin / "arl"), "eval", "--data", "data", "--json"], cwd=repo, env=env))
    assert set(result) == {"score", "metrics", "samples", "seconds"} and math.isfinite(result["score"])
    assert result["samples"] == 8
    # the installed hooks run with the wheel's arl: a commit goes through them
    _run(["git", "add", "-A"], cwd=repo, env=env)
    _run(["git", "commit", "-qm", "lab"], cwd=repo, env=env)


def test_editable_install_finds_its_templates() -> None:
    """The dev venv's arl is the checkout (an editable install) and finds the top-level folders beside it."""
    out = subprocess.run(
        [sys.executable, "-c", "import arl, arl.util.fsutil as f; "
         "print(arl.__file__); print(f.resource_dir('templates')); print(f.resource_dir('hooks'))"],
        cwd="/", capture_output=True, text=True, check=True, env={**os.environ, "PYTHONPATH": ""},
    ).stdout.split()  # fmt: skip
    assert Path(out[0]) == ROOT / "arl" / "__init__.py"
    assert Path(out[1]) == ROOT / "templates"
    assert (Path(out[1]) / "examples" / "curve-fit" / "lab.toml").is_file()
    assert Path(out[2]) == ROOT / "hooks"
    assert (Path(out[2]) / "hook.tmpl").is_file()  # one template, rendered per hook type
