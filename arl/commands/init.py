"""`arl init`: scaffold a lab (lab.toml, backend.py, AGENT.md, Makefile, results.tsv) and install the hooks."""

from __future__ import annotations

import argparse
import os
import re
import shlex
from pathlib import Path

from arl.errors import ArlError
from arl.git import githooks as hooks
from arl.history import results
from arl.util.fsutil import resource_dir
from arl.util.toml_out import toml_str

LAB_FILES = ("lab.toml", "backend.py", "AGENT.md", "Makefile")
IGNORE_LINES = (".arl/", "__pycache__/")
MAKEFILE_NAMES = ("GNUmakefile", "makefile", "Makefile")  # the order GNU make looks for them in
ARL_MK = "arl.mk"
INCLUDE_BLOCK = "\n# The research lab's targets (make research DATA=...), written by `arl init`.\ninclude arl.mk\n"


def examples() -> dict[str, Path]:
    root = resource_dir("templates") / "examples"
    return {p.name: p for p in sorted(root.iterdir()) if (p / "lab.toml").is_file()}


def _describe(path: Path) -> str:
    first = (path / "AGENT.md").read_text().splitlines()
    return next((ln for ln in first[1:] if ln.strip()), "").strip()


def init_lab(
    where: Path, name: str | None, pipeline_dir: str, example: str | None, force: bool, adopt: bool = False
) -> int:
    if not where.is_dir():
        raise ArlError(f"{where} is not a folder; create it first (arl init scaffolds a lab in an existing folder)")
    repo = hooks.repo_root(where)
    from arl.util.installed import warn_about_conflicts

    warn_about_conflicts()
    hooks.hooks_dir(repo)  # a core.hooksPath arl must not write to is refused before anything is written
    lab = where.resolve()
    templates = resource_dir("templates")
    if adopt:
        return _adopt(lab, repo, templates)
    if example is not None:
        found = examples()
        if example not in found:
            raise ArlError(f"no example named {example!r}; known: {', '.join(found)} (arl init --list-examples)")
        source = found[example]
        files = {p.relative_to(source): p for p in source.rglob("*") if p.is_file() and "__pycache__" not in p.parts}
    else:
        files = {Path(f): templates / "lab" / f for f in LAB_FILES if f != "Makefile"}
    # A Makefile already there is the user's (or one they may have edited): it is never replaced. The lab's
    # targets then go to arl.mk, which it includes.
    user_make = next((lab / n for n in MAKEFILE_NAMES if (lab / n).is_file()), None)
    make_rel = Path(ARL_MK if user_make is not None else "Makefile")
    targets = [*files, make_rel, Path("results.tsv")]
    existing = [str(t) for t in targets if (lab / t).exists()]
    history = lab / "results.tsv"
    # results.tsv is append-only: --force refreshes the scaffolding, never the experiment history.
    keep_history = history.is_file() and len(history.read_text(errors="replace").strip().splitlines()) > 1
    if existing and not force:
        raise ArlError(f"{', '.join(existing[:3])} already exist in {lab}; pass --force to overwrite")
    written: list[str] = []
    for rel, src in files.items():
        text = src.read_bytes()
        if rel == Path("lab.toml"):
            text = _lab_toml(src.read_text(), name or (example or lab.name), pipeline_dir, example).encode()
        _write(lab, rel, text)
        written.append(str(rel))
    template = (templates / "lab" / "Makefile").read_text()
    if user_make is None:
        _write(lab, make_rel, template.encode())
        written.append(str(make_rel))
    else:
        written += _include_arl_mk(lab, user_make, template)
    if example is None:
        (lab / pipeline_dir).mkdir(parents=True, exist_ok=True)
    if keep_history:
        print(f"kept the experiment history in {history} (delete it by hand to start from nothing)")
    else:
        history.write_text(results.header_line())
    written += ["results.tsv", ".gitignore"]
    _gitignore(lab / ".gitignore")
    installed = hooks.install(repo)
    print(f"created the lab {name or example or lab.name!r} in {lab}")
    _commit_line(lab, installed, [*written, pipeline_dir if example is None else "pipeline"])
    print(
        "next: arl eval --data DIR, then make research DATA=DIR"
        if example is None
        else "next: arl eval --data data, then make research DATA=data ARGS='--agent offline'"
    )
    return 0


def _commit_line(lab: Path, installed: list[Path], written: list[str]) -> None:
    """The hooks installed, and the one command that commits the lab's files and nothing else: `git commit --
    PATHS` leaves the user's other staged work staged. An empty folder (a new pipeline) is left out: git has
    nothing of it to commit yet."""
    for p in installed:
        print(f"installed the git hook {p}")
    inside = [w for w in written if ".." not in Path(w).parts and not Path(w).is_absolute()]
    names = [t for t in dict.fromkeys(Path(w).parts[0] for w in inside) if _has_files(lab / t)]
    tops = " ".join(shlex.quote(t) for t in names)
    print(f"the lab's files: {tops}; commit these, and nothing else of yours, with:")
    print(f"  git add -- {tops} && git commit -m 'arl lab' -- {tops}")


def _has_files(path: Path) -> bool:
    return path.is_file() or (path.is_dir() and any(p.is_file() for p in path.rglob("*")))


def _adopt(lab: Path, repo: Path, templates: Path) -> int:
    """An existing lab (e.g. autoresearch-lab's) made an arl lab: what it lacks is written (a Makefile or arl.mk,
    the instructions file, the .gitignore lines, the hooks); nothing it has is replaced, its history included."""
    from arl.config.config import load

    if not (lab / "lab.toml").is_file():
        raise ArlError(f"there is no lab.toml in {lab} to adopt; `arl init` (without --adopt) makes a new lab")
    cfg = load(lab / "lab.toml")  # its keys checked now, each error naming the key to change
    written: list[str] = ["lab.toml"]
    if not cfg.agent_instructions.exists():
        _write(lab, cfg.agent_instructions.relative_to(lab), (templates / "lab" / "AGENT.md").read_bytes())
        print(f"wrote {cfg.agent_instructions.name} (the agent's instructions: say what it should try)")
    written.append(os.path.relpath(cfg.agent_instructions, lab))
    user_make = next((lab / n for n in MAKEFILE_NAMES if (lab / n).is_file()), None)
    template = (templates / "lab" / "Makefile").read_text()
    if user_make is None:
        _write(lab, Path("Makefile"), template.encode())
        written.append("Makefile")
    elif not (lab / ARL_MK).exists() and "arl-step" not in user_make.read_text(errors="replace"):
        written += _include_arl_mk(lab, user_make, template)
    written += [os.path.relpath(p, lab) for p in (cfg.backend_module, cfg.results_file, cfg.pipeline_dir)]
    _gitignore(lab / ".gitignore")
    written.append(".gitignore")
    installed = hooks.install(repo)
    print(f"adopted the lab {cfg.name!r} in {lab}; its files are as they were (results.tsv included)")
    _commit_line(lab, installed, written)
    print("next: arl run --dry-run --data DIR, then make research DATA=DIR")
    return 0


def _write(lab: Path, rel: Path, content: bytes) -> None:
    """Write a scaffold file; a different file already there (only with --force) is kept beside it first."""
    dest = lab / rel
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.is_file() and dest.read_bytes() != content:
        backup = next(
            b for n in range(1000) if not (b := dest.with_name(f"{dest.name}.orig{'' if n == 0 else f'.{n}'}")).exists()
        )
        os.replace(dest, backup)
        print(f"kept your previous {rel} as {backup.relative_to(lab)}")
    dest.write_bytes(content)


def _include_arl_mk(lab: Path, user_make: Path, template: str) -> list[str]:
    """arl.mk with the lab's targets (minus those the user's Makefile defines), and one include line in it."""
    user_text = user_make.read_text(errors="replace")
    theirs = sorted(set(_targets(user_text)) & set(_targets(template)) - {".PHONY"})
    _write(lab, Path(ARL_MK), arl_mk(template, theirs).encode())
    print(f"{user_make.name} exists: the lab's targets are in {ARL_MK}, which it includes")
    if theirs:
        print(f"your {user_make.name} defines {', '.join(theirs)}: {ARL_MK} leaves those to it")
        if "research" in theirs:
            print("the research loop is then `arl run --data DIR` (the same steps as arl.mk's research target)")
    if re.search(rf"(?m)^\s*-?include\s+(.*\s)?{re.escape(ARL_MK)}\s*$", user_text):
        return [ARL_MK]
    with open(user_make, "a") as f:
        f.write(("" if user_text.endswith("\n") or not user_text else "\n") + INCLUDE_BLOCK)
    print(f"added `include {ARL_MK}` at the end of {user_make.name}")
    return [ARL_MK, user_make.name]


def _targets(text: str) -> list[str]:
    """The targets a makefile's rules name (not variable assignments, not recipe lines)."""
    out: list[str] = []
    for line in text.splitlines():
        m = re.match(r"^([^\s#:=\t][^:=#]*?)\s*::?(?!=)", line)
        if m and not line.startswith("\t"):
            out += m.group(1).split()
    return out


def arl_mk(template: str, leave_out: list[str]) -> str:
    """The lab Makefile as an include: without the targets the including Makefile has, and leaving its default
    goal as it was (`make` alone still does what it did)."""
    blocks = template.strip("\n").split("\n\n")
    blocks[0] = "\n".join(ln for ln in blocks[0].splitlines() if not ln.startswith("#"))  # the Makefile's header
    kept = []
    for block in blocks:
        rules = _targets(block)
        if rules and rules[0] in leave_out:
            continue
        kept.append(
            re.sub(
                r"(?m)^\.PHONY:(.*)$",
                lambda m: ".PHONY:" + "".join(f" {t}" for t in m.group(1).split() if t not in leave_out),
                block,
            )
        )
    body = "\n\n".join(kept).replace("$(DATA)", "$(ARL_MK_DATA)").replace("$(ARGS)", "$(ARL_MK_ARGS)")
    # DATA and ARGS as given to make (`make research DATA=...`), never the including Makefile's own variables
    given = "$(if $(filter command line environment,$(origin {0})),$({0}),{1})"
    body = body.replace(
        "DATA ?= data\nARGS ?=\n",
        f"ARL_MK_DATA = {given.format('DATA', 'data')}\nARL_MK_ARGS = {given.format('ARGS', '')}\n",
        1,
    )
    return (
        "# The research lab's targets, written by `arl init` and included by the Makefile beside it. Yours to edit\n"
        "# (`arl init --force` keeps the previous version as arl.mk.orig).\n"
        '# Usage: make research DATA=path/to/data [ARGS="--max-iterations 20 --agent offline"]\n'
        "ARL_MK_GOAL := $(.DEFAULT_GOAL)\n\n" + body + "\n\n.DEFAULT_GOAL := $(ARL_MK_GOAL)\n"
    )


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


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The command's options (arl.cli builds them only when this command runs)."""
    p.add_argument("--name", help="the lab's name (default: the folder's name)")
    p.add_argument("--pipeline-dir", default="pipeline", help="the folder the agent may change (default: pipeline)")
    p.add_argument("--example", help="scaffold a complete example lab instead (default: none; see --list-examples)")
    p.add_argument("--list-examples", action="store_true", help="list the examples and exit")
    p.add_argument(
        "--force",
        action="store_true",
        help="write the scaffolding over files that exist, each kept "
        "beside it as NAME.orig; never your Makefile or a results.tsv history (default: off)",
    )
    p.add_argument(
        "--adopt",
        action="store_true",
        help="make the lab here (e.g. an autoresearch-lab one) an arl lab: "
        "write only what it lacks, replace nothing (default: off)",
    )


def from_args(args: argparse.Namespace) -> int:
    if args.list_examples:
        for name, path in examples().items():
            print(f"{name:16} {_describe(path)}")
        return 0
    if args.adopt and (args.example or args.force):
        raise ArlError("--adopt keeps every file of the lab: it goes with neither --example nor --force")
    return init_lab(Path(args.lab or "."), args.name, args.pipeline_dir, args.example, args.force, args.adopt)
