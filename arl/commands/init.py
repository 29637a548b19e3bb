"""`arl init`: scaffold a lab (lab.toml, backend.py, AGENT.md, Makefile, results.tsv) and install the hooks."""

from __future__ import annotations

import argparse
import re
import shutil
from pathlib import Path

from .. import hooks, results
from ..errors import ArlError
from ..fsutil import resource_dir
from ..toml_out import toml_str

LAB_FILES = ("lab.toml", "backend.py", "AGENT.md", "Makefile")
IGNORE_LINES = (".arl/", "__pycache__/")


def examples() -> dict[str, Path]:
    root = resource_dir("templates") / "examples"
    return {p.name: p for p in sorted(root.iterdir()) if (p / "lab.toml").is_file()}


def _describe(path: Path) -> str:
    first = (path / "AGENT.md").read_text().splitlines()
    return next((ln for ln in first[1:] if ln.strip()), "").strip()


def init_lab(where: Path, name: str | None, pipeline_dir: str, example: str | None, force: bool) -> int:
    if not where.is_dir():
        raise ArlError(f"{where} is not a folder; create it first (arl init scaffolds a lab in an existing folder)")
    repo = hooks.repo_root(where)
    hooks.hooks_dir(repo)  # a core.hooksPath arl must not write to is refused before anything is written
    lab = where.resolve()
    templates = resource_dir("templates")
    if example is not None:
        found = examples()
        if example not in found:
            raise ArlError(f"no example named {example!r}; known: {', '.join(found)} (arl init --list-examples)")
        source = found[example]
        files = {p.relative_to(source): p for p in source.rglob("*") if p.is_file() and "__pycache__" not in p.parts}
        files[Path("Makefile")] = templates / "lab" / "Makefile"
    else:
        files = {Path(f): templates / "lab" / f for f in LAB_FILES}
    targets = [*files, Path("results.tsv")]
    existing = [str(t) for t in targets if (lab / t).exists()]
    history = lab / "results.tsv"
    # results.tsv is append-only: --force refreshes the scaffolding, never the experiment history.
    keep_history = history.is_file() and len(history.read_text(errors="replace").strip().splitlines()) > 1
    if existing and not force:
        raise ArlError(f"{', '.join(existing[:3])} already exist in {lab}; pass --force to overwrite")
    for rel, src in files.items():
        dest = lab / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        if rel == Path("lab.toml"):
            dest.write_text(_lab_toml(src.read_text(), name or (example or lab.name), pipeline_dir, example))
        else:
            shutil.copyfile(src, dest)
    if example is None:
        (lab / pipeline_dir).mkdir(parents=True, exist_ok=True)
    if keep_history:
        print(f"kept the experiment history in {history} (delete it by hand to start from nothing)")
    else:
        history.write_text(results.header_line())
    _gitignore(lab / ".gitignore")
    installed = hooks.install(repo)
    print(f"created the lab {name or example or lab.name!r} in {lab}")
    for p in installed:
        print(f"installed the git hook {p}")
    print(
        "next: arl eval --data DIR, then make research DATA=DIR"
        if example is None
        else "next: arl eval --data data, then make research DATA=data ARGS='--agent offline'"
    )
    return 0


def _lab_toml(text: str, name: str, pipeline_dir: str, example: str | None) -> str:
    if example is not None:
        return re.sub(r'(?m)^name = ".*"$', lambda _m: f"name = {toml_str(name)}", text, count=1)
    return text.replace("@NAME@", toml_str(name)).replace("@PIPELINE_DIR@", toml_str(pipeline_dir))


def _gitignore(path: Path) -> None:
    have = path.read_text().splitlines() if path.exists() else []
    missing = [line for line in IGNORE_LINES if line not in have]
    if missing:
        with open(path, "a") as f:
            if have and have[-1] != "":
                f.write("\n")
            f.write("\n".join(missing) + "\n")


def from_args(args: argparse.Namespace) -> int:
    if args.list_examples:
        for name, path in examples().items():
            print(f"{name:16} {_describe(path)}")
        return 0
    return init_lab(Path(args.lab or "."), args.name, args.pipeline_dir, args.example, args.force)
