"""Installing arl's git hooks the careful way: marked, chaining a foreign hook, removing only ours. Each is
hooks/hook.tmpl rendered for its hook type, naming arl's python and the runner beside the template
(hooks/hookrun.py) by their absolute paths."""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

from arl.errors import ArlError
from arl.util import sh
from arl.util.fsutil import resource_dir

MARKER = "arl-managed-hook"
HOOKS = ("pre-commit", "post-commit")
CHAINED = ".arl-chained"


def repo_root(path: Path) -> Path:
    code, out, _ = sh.run(sh.git(path)["rev-parse", "--show-toplevel"], ok=None, quiet=True)
    if code != 0:
        raise ArlError(f"{path} is not inside a git repository (run `git init` first)")
    return Path(out.strip())


def hooks_dir(repo: Path) -> Path:
    _, hooks_path, _ = sh.run(sh.git(repo)["config", "--get", "core.hooksPath"], ok=(0, 1), quiet=True)
    _, out, _ = sh.run(sh.git(repo)["rev-parse", "--path-format=absolute", "--git-path", "hooks"], quiet=True)
    target = Path(out.strip())
    if hooks_path.strip():
        # A hooks folder inside the repository is the project's choice: respect it. One outside is
        # shared with other repositories or owned by another tool: writing there would surprise someone.
        if not target.resolve().is_relative_to(repo.resolve()):
            raise ArlError(
                f"core.hooksPath is set to {hooks_path.strip()}, outside this repository; arl will not write "
                f"there. Call `{shlex.join([sys.executable, str(runner())])} pre-commit` and `... post-commit` from "
                f"those hooks, or `git config --unset core.hooksPath` and rerun `arl hooks install`"
            )
    return target


def is_ours(path: Path) -> bool:
    try:
        return MARKER in path.read_text(errors="replace")[:400]
    except OSError:
        return False


def install(repo: Path) -> list[Path]:
    target = hooks_dir(repo)
    target.mkdir(parents=True, exist_ok=True)
    template = (resource_dir("hooks") / "hook.tmpl").read_text()
    written = []
    for name in HOOKS:
        dest = target / name
        if (dest.exists() or dest.is_symlink()) and not is_ours(dest):
            chained = target / (name + CHAINED)
            if chained.exists():
                raise ArlError(f"both {dest} and {chained} exist; merge them by hand, then rerun")
            os.replace(dest, chained)
            sh.say(f"kept your {name} hook as {chained.name}; arl's hook runs it first")
        dest.write_text(render(template, name))
        dest.chmod(0o755)
        written.append(dest)
    return written


def runner() -> Path:
    """What the hooks run: a script, in a checkout beside the package and in a wheel inside it."""
    return resource_dir("hooks") / "hookrun.py"


def render(template: str, name: str) -> str:
    """One template for every hook type (as pre-commit does): only its name, arl's python and runner differ."""
    return (
        template.replace("@HOOK@", name)
        .replace("@ARL_PYTHON@", shlex.quote(sys.executable))
        .replace("@ARL_HOOKRUN@", shlex.quote(str(runner())))
    )


def refresh(repo: Path) -> list[Path]:
    """arl's hooks that an earlier version (or another python) wrote, rewritten from the current template: a hook
    importing a path arl no longer has would let commits through unchecked. Foreign hooks are left as they are."""
    target = hooks_dir(repo)
    template = (resource_dir("hooks") / "hook.tmpl").read_text()
    rewritten = []
    for name in HOOKS:
        dest = target / name
        if not dest.is_symlink() and is_ours(dest) and dest.read_text(errors="replace") != render(template, name):
            dest.write_text(render(template, name))
            dest.chmod(0o755)
            rewritten.append(dest)
    return rewritten


def uninstall(repo: Path) -> list[Path]:
    target = hooks_dir(repo)
    removed = []
    for name in HOOKS:
        dest = target / name
        if dest.exists() and is_ours(dest):
            dest.unlink()
            removed.append(dest)
            chained = target / (name + CHAINED)
            if chained.exists():
                os.replace(chained, dest)
    return removed
