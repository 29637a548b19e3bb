"""The layout README's "Layout" section promises, read from the source: packages import only from the layers below
them, no import cycle (lazy and type-only imports count), no step imports another, no module reaches into
another's private names, no module is over 300 lines, no folder holds more than a dozen modules (steps and commands
aside), and README names every folder."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from .conftest import ROOT

ARL = ROOT / "arl"
# Lowest first: a package may import from its own layer and the ones before it. The top-level modules are the
# error class (used everywhere), the two console scripts and the old import paths kept for backends (arl.api) and
# for git hooks an earlier arl installed (arl.hookrun).
LAYERS = [
    "util",
    "config",
    "history",
    "git",
    "channel",
    "runstate",
    "sandbox",
    "broker",
    "evaluation",
    "engines",
    "agents",
    "report",
    "loop",
    "steps",
    "commands",
]
TOP_LEVEL_LOW = {"errors"}  # below every package


def modules(root: Path = ARL) -> list[Path]:
    return sorted(p for p in root.rglob("*.py") if "__pycache__" not in p.parts)


def arl_imports(path: Path) -> list[tuple[int, str, list[str]]]:
    """(line, module, names) of every import of arl's own code in the file, nested ones included."""
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            raise AssertionError(f"{path}:{node.lineno}: relative import (arl's imports are absolute)")
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "arl":
            out.append((node.lineno, node.module, [a.name for a in node.names]))
        elif isinstance(node, ast.Import):
            out += [(node.lineno, a.name, []) for a in node.names if a.name.split(".")[0] == "arl"]
    return out


def layer(module: str) -> int | None:
    """The layer of `arl.X...` (None for the top-level modules that are not below everything)."""
    parts = module.split(".")
    if len(parts) < 2 or parts[1] in TOP_LEVEL_LOW:
        return -1
    return LAYERS.index(parts[1]) if parts[1] in LAYERS else None


def upward_imports(root: Path) -> list[str]:
    wrong = []
    for path in modules(root):
        rel = path.relative_to(root)
        if len(rel.parts) < 2:
            continue  # the top-level modules: the console scripts sit above everything
        mine = LAYERS.index(rel.parts[0])
        for line, module, names in arl_imports(path):
            targets = [f"{module}.{n}" for n in names] if module.count(".") == 0 else [module]
            for target in targets:
                theirs = layer(target)
                if theirs is None or theirs > mine:
                    wrong.append(f"arl/{rel}:{line} imports {target}")
    return wrong


def private_imports(root: Path) -> list[str]:
    return [
        f"arl/{path.relative_to(root)}:{line} imports {module}.{name}"
        for path in modules(root)
        for line, module, names in arl_imports(path)
        for name in names
        if name.startswith("_") and not name.startswith("__")
    ]


def test_every_package_imports_only_from_its_layer_and_below() -> None:
    wrong = upward_imports(ARL)
    assert not wrong, "\n".join(wrong)


def test_no_step_imports_another_step() -> None:
    wrong = [
        f"{path.name}:{line} imports {module}"
        for path in (ARL / "steps").glob("*.py")
        for line, module, _ in arl_imports(path)
        if module.startswith("arl.steps")
    ]
    assert not wrong, "\n".join(wrong)


def test_no_module_imports_a_private_name_of_another() -> None:
    wrong = private_imports(ARL)
    assert not wrong, "\n".join(wrong)


MAX_MODULES = 12
MANY_MODULES = {"steps", "commands"}  # one module per `arl-step` / `arl` command: as many as there are commands


def crowded_folders(root: Path) -> list[str]:
    """The folders under `root` (arl/) with more than MAX_MODULES .py files, `__init__.py` included."""
    folders = sorted({p.parent for p in modules(root)} - {root})
    counts = {f: len(list(f.glob("*.py"))) for f in folders if f.relative_to(root).parts[0] not in MANY_MODULES}
    return [f"arl/{f.relative_to(root)}/: {n} modules" for f, n in counts.items() if n > MAX_MODULES]


def test_no_folder_holds_more_than_a_dozen_modules() -> None:
    """A folder is one idea a reader can take in at once; one that grows past a dozen holds two: split it."""
    wrong = crowded_folders(ARL)
    assert not wrong, "\n".join(wrong)


def test_the_folder_check_sees_a_crowded_folder(tmp_path: Path) -> None:
    for folder, count in (("loop", MAX_MODULES + 1), ("agents", MAX_MODULES), ("steps", MAX_MODULES + 5)):
        (tmp_path / folder).mkdir()
        for i in range(count):
            (tmp_path / folder / f"m{i}.py").write_text("")
    assert crowded_folders(tmp_path) == [f"arl/loop/: {MAX_MODULES + 1} modules"]


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(ARL)))
def test_no_module_is_over_300_lines(path: Path) -> None:
    # as ruff formats it: no `fmt: skip` packs lines to fit (`make lint` checks the formatting itself)
    text = path.read_text()
    assert len(text.splitlines()) <= 300 and "fmt: skip" not in text


def test_the_checks_see_a_violation(tmp_path: Path) -> None:
    """The checks find what they claim to: an upward import and a private name, in a file made to hold them."""
    (tmp_path / "util").mkdir()
    (tmp_path / "util" / "probe.py").write_text("from arl.loop.run import OK\nfrom arl.util.sh import _echo\n")
    assert upward_imports(tmp_path) == ["arl/util/probe.py:1 imports arl.loop.run"]
    assert private_imports(tmp_path) == ["arl/util/probe.py:2 imports arl.util.sh._echo"]


def import_graph(root: Path) -> dict[str, set[str]]:
    """Each module (`loop.run`) -> the modules of arl it imports, wherever in the file: at the top, in a function
    (a lazy import), under TYPE_CHECKING. A lazy import hides a cycle from Python, not from a reader."""
    names = {".".join(p.relative_to(root).with_suffix("").parts) for p in modules(root)}
    graph: dict[str, set[str]] = {}
    for path in modules(root):
        me = ".".join(path.relative_to(root).with_suffix("").parts)
        graph[me] = set()
        for _, module, imported in arl_imports(path):
            base = ".".join(module.split(".")[1:])
            for name in imported or [""]:
                target = f"{base}.{name}".strip(".")
                if target in names:
                    graph[me].add(target)
                elif base in names:
                    graph[me].add(base)
                elif f"{base}.__init__" in names:
                    graph[me].add(f"{base}.__init__")
        graph[me].discard(me)
    return graph


def cycles(root: Path) -> list[str]:
    """One path per import cycle found, `a -> b -> a`."""
    graph = import_graph(root)
    found: list[str] = []
    state: dict[str, str] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                found.append(" -> ".join([*path[path.index(nxt) :], nxt]))
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    return found


def test_no_import_cycle() -> None:
    found = cycles(ARL)
    assert not found, "\n".join(found)


def test_the_cycle_check_sees_a_lazy_cycle(tmp_path: Path) -> None:
    (tmp_path / "util").mkdir()
    (tmp_path / "util" / "a.py").write_text("from arl.util import b\n")
    (tmp_path / "util" / "b.py").write_text("def f() -> None:\n    from arl.util.a import g\n")
    assert cycles(tmp_path) == ["util.a -> util.b -> util.a"]


def layout_entries() -> dict[str, str]:
    """README's "Layout": each entry's text by the folder it opens with (`arl/util/`, `arl/`, `hooks/`)."""
    section = (ROOT / "README.md").read_text().split("\n## Layout\n", 1)[1].split("\n## ", 1)[0]
    entries = re.findall(r"(?ms)^\* `([^`]+)`(.*?)(?=^\* |\Z)", section)
    return {folder: text for folder, text in entries}


def test_readme_layout_names_every_folder_in_layer_order() -> None:
    """README's "Layout" has one entry per folder of arl/, lowest first as LAYERS has them, and none that is gone."""
    named = [f.split("/")[1] for f in layout_entries() if re.fullmatch(r"arl/\w+/", f)]
    folders = sorted(p.parent.name for p in ARL.glob("*/__init__.py"))
    assert sorted(LAYERS) == folders
    assert named == LAYERS


def test_readme_layout_names_every_module_and_no_other() -> None:
    """Each folder's entry names its modules in backticks (steps and commands aside: one per command), and every
    lower-case name in backticks there is one of them: a module renamed or merged away shows."""
    entries = layout_entries()
    wrong = []
    for folder, entry in entries.items():
        where = ROOT / folder
        if not folder.startswith(("arl/", "hooks/")) or where.name in MANY_MODULES:
            continue
        files = [p for p in where.glob("*") if p.is_file() and p.suffix in (".py", ".tmpl")]
        mine = {p.stem if p.suffix == ".py" and folder != "hooks/" else p.name for p in files} - {"__init__"}
        named = set(re.findall(r"`([a-z_][a-z0-9_.]*)`", entry))
        named = {n for n in named if n in mine or re.fullmatch(r"[a-z_][a-z0-9_]*(\.py|\.tmpl)?", n)}
        wrong += [f"{folder}: `{m}` is not named" for m in sorted(mine - named)]
        wrong += [f"{folder}: `{n}` is no module there" for n in sorted(named - mine)]
    assert not wrong, "\n".join(wrong)
