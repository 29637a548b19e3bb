"""What arl's git hooks do, run by path: `python /abs/path/hooks/hookrun.py pre-commit|post-commit`. The hooks
rendered from hook.tmpl (beside this file) name it with its absolute path, as they name arl's python.

- pre-commit: in a keep's commit (arl sets ARL_KEEP_LAB), the lab's `make guard`, whose failure vetoes the keep;
  otherwise a commit that touches the pipeline of a lab whose research run is active is refused.
- post-commit: in a keep's commit, the lab's `make on-keep`.

A script, not a module of the package: the hooks are one folder, found by path. Without arl importable (its
virtualenv removed, or another python), a person's commit goes through unchecked."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], capture_output=True, text=True).stdout


def _make(lab: str, target: str) -> int:
    if not any((Path(lab) / name).is_file() for name in ("GNUmakefile", "makefile", "Makefile")):  # make's order
        return 0
    return subprocess.run(["make", "-s", "-C", lab, target]).returncode


def _keep_target(target: str, failed: str) -> int | None:
    """During a keep's commit (arl sets ARL_KEEP_LAB): the lab's `make TARGET`, its exit code. None otherwise."""
    keep_lab = os.environ.get("ARL_KEEP_LAB")
    if not keep_lab:
        return None
    rc = _make(keep_lab, target)
    if rc != 0:
        print(f"arl: `make {target}` failed in {keep_lab} (exit {rc}){failed}", file=sys.stderr)
    return rc


def pre_commit() -> int:
    rc = _keep_target("guard", ": the keep is vetoed")
    if rc is not None:
        return rc
    if os.environ.get("ARL_ALLOW_PIPELINE_COMMIT") == "1":
        return 0
    try:
        from arl.runstate.state import active_run_pid
    except ImportError:
        return 0  # arl is not importable (its virtualenv removed, another python): unchecked
    top = Path(_git("rev-parse", "--show-toplevel").strip() or ".")
    # --no-renames: a file moved out of the pipeline touches the pipeline too (its old path is listed)
    staged = [p for p in _git("diff", "--cached", "--name-only", "--no-renames", "-z").split("\0") if p]
    for lab_toml in _git("ls-files", "-z", "--", "lab.toml", "*/lab.toml").split("\0"):
        if not lab_toml:
            continue
        lab_root = (top / lab_toml).parent
        pid = active_run_pid(lab_root)
        if pid is None:
            continue
        try:
            from arl.config.config import load

            pipeline = load(top / lab_toml).pipeline_dir.resolve().relative_to(top.resolve())
        except Exception:
            continue
        touched = [p for p in staged if Path(p).is_relative_to(pipeline)]
        if touched:
            print(
                f"arl: a research run (pid {pid}) is active in {lab_root}; its pipeline belongs to the agent "
                f"until the run stops ({touched[0]} is staged). Stop the run, or commit anyway with "
                f"ARL_ALLOW_PIPELINE_COMMIT=1 git commit ...",
                file=sys.stderr,
            )
            return 1
    return 0


def post_commit() -> int:
    _keep_target("on-keep", "; the keep stands")  # the commit is made: a failure here changes nothing
    return 0


def main(argv: list[str]) -> int:
    hook = argv[0] if argv else ""
    if hook == "pre-commit":
        return pre_commit()
    if hook == "post-commit":
        return post_commit()
    print(f"arl: unknown hook {hook!r}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
