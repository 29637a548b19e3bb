"""The loop exists twice, as the lab Makefile's `research` target and as `arl run`: the same steps, in the same
order (read from both sources, so that neither can change alone)."""

from __future__ import annotations

import ast
import re

from .conftest import ROOT

# `arl run`'s functions and the `arl-step` names the Makefile calls them by
STEP_OF = {
    "preflight": "preflight",
    "image": "image",
    "service_up": "service-up",
    "baseline": "baseline",
    "should_stop": "should-stop",
    "launch": "launch",
    "next_turn": "next",
}


def makefile_steps() -> list[str]:
    text = (ROOT / "templates" / "lab" / "Makefile").read_text()
    recipe = text.split("\nresearch:\n", 1)[1].split("\n\n", 1)[0]
    body = recipe.split("trap 'exit 130' INT TERM;", 1)[1]  # after the traps (teardown runs on EXIT)
    return re.findall(r"\$\(STEP\) ([a-z-]+)", body)


def run_py_steps() -> list[str]:
    tree = ast.parse((ROOT / "arl" / "commands" / "run.py").read_text())
    loop = next(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == "run_loop")
    calls = [n for n in ast.walk(loop) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)]
    calls.sort(key=lambda n: (n.lineno, n.col_offset))
    return [STEP_OF[c.func.id] for c in calls if c.func.id in STEP_OF]


def test_the_makefile_and_arl_run_run_the_same_steps_in_the_same_order() -> None:
    steps = makefile_steps()
    assert steps == ["preflight", "image", "service-up", "baseline", "should-stop", "launch", "next"]
    assert run_py_steps() == steps
