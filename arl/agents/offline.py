"""The `offline` agent: no LLM. Seeded hill-climbing over the pipeline's numeric constants, through the same
protocol as any agent (`arl eval`, `arl verdict`). It is a real optimiser: the demo and many tests use it.

The adapter half runs on the host; `python -m arl.agents.offline` is the agent inside the sandbox."""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from arl.agents.base import AgentContext, Event, LaunchSpec, StreamAccount

# Module-level UPPER_CASE = number lines, the knobs a researcher leaves in a pipeline.
CONSTANT = re.compile(
    r"^(?P<name>[A-Z][A-Z0-9_]*)(?P<eq>\s*=\s*)(?P<num>-?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?)(?P<rest>\s*(#.*)?)$"
)


class OfflineAdapter:
    name = "offline"

    def launch(self, ctx: AgentContext) -> LaunchSpec:
        argv = ["python3", "-u", "-m", "arl.agents.offline"]
        return LaunchSpec(argv=argv, env={}, auth="none (no LLM)", image_layer=None, network="none")

    def parse_line(self, line: str, acc: StreamAccount) -> list[Event]:
        try:
            obj = json.loads(line)
        except ValueError:
            return [Event("text", line)] if line.strip() else []
        if not isinstance(obj, dict):
            return []
        acc.events += 1
        kind = obj.get("event", "text")
        if kind == "final":
            acc.final = obj
        return [Event(kind if kind in ("started", "text", "tool_call", "final") else "text", str(obj.get("text", "")))]

    def end_class(self, acc: StreamAccount, exit_code: int | None) -> str:
        if exit_code is None:
            return "killed"
        return "done" if exit_code == 0 else "error"

    def cost(self, acc: StreamAccount) -> float:
        return 0.0


@dataclass
class Knob:
    file: Path
    line: int
    name: str
    value: float
    is_int: bool


def find_knobs(pipeline: Path) -> list[Knob]:
    knobs = []
    for path in sorted(pipeline.rglob("*.py")):
        if "__pycache__" in path.parts:
            continue
        for i, text in enumerate(path.read_text(errors="replace").splitlines()):
            m = CONSTANT.match(text)
            if m:
                num = m.group("num")
                is_int = re.fullmatch(r"-?\d+", num) is not None
                knobs.append(Knob(path, i, m.group("name"), float(num), is_int))
    return knobs


def set_knob(knob: Knob, value: float) -> None:
    lines = knob.file.read_text().splitlines(keepends=True)
    m = CONSTANT.match(lines[knob.line].rstrip("\n"))
    assert m is not None
    shown = str(int(round(value))) if knob.is_int else f"{value:.6g}"
    lines[knob.line] = f"{m.group('name')}{m.group('eq')}{shown}{m.group('rest')}\n"
    knob.file.write_text("".join(lines))


def emit(event: str, text: str, **extra: Any) -> None:
    print(json.dumps({"event": event, "text": text, **extra}), flush=True)


def run_json(argv: list[str]) -> dict[str, Any]:
    proc = subprocess.run(argv, capture_output=True, text=True)
    for line in reversed(proc.stdout.strip().splitlines()):
        try:
            obj = json.loads(line)
            if isinstance(obj, dict):
                return obj
        except ValueError:
            continue
    return {"error": (proc.stderr or proc.stdout).strip()[-300:] or f"exit {proc.returncode}"}


def main() -> int:
    pipeline = Path(os.environ.get("ARL_PIPELINE", "/workspace/pipeline"))
    seed = int(os.environ.get("ARL_SEED", "0"))
    rng = random.Random(seed)
    from arl.config.config import find_lab, load

    maximize = load(find_lab()).maximize
    emit("started", f"offline hill-climber, seed {seed}")
    current = run_json(["arl", "eval", "--json"])
    if "error" in current:
        emit("final", f"the pipeline does not evaluate: {current['error']}")
        return 1
    best = float(current["score"])
    steps: dict[str, float] = {}
    while True:
        knobs = find_knobs(pipeline)
        if not knobs:
            emit("final", "no numeric constants (UPPER_CASE = number) in the pipeline to tune")
            return 1
        knob = rng.choice(knobs)
        step = steps.get(knob.name, 0.5)
        scale = max(abs(knob.value), 1.0)
        delta = rng.gauss(0.0, step * scale)
        new = knob.value + (delta if not knob.is_int else (1 if delta >= 0 else -1) * max(1, round(abs(delta))))
        set_knob(knob, new)
        emit("tool_call", f"set {knob.name} {knob.value:g} -> {new:.6g} in {knob.file.name}")
        result = run_json(["arl", "eval", "--json"])
        if "error" in result:
            action, score = "discard", None
        else:
            score = float(result["score"])
            action = "keep" if (score > best if maximize else score < best) else "discard"
        notes = f"{knob.name}: {knob.value:g} -> {new:.6g}" + ("" if score is None else f" (score {score:.6g})")
        ack = run_json(["arl", "verdict", action, "--notes", notes])
        emit("text", f"{action}: {notes} -> host says {ack.get('outcome')} {ack.get('reason') or ''}".strip())
        if ack.get("outcome") == "keep":
            counted = ack.get("verified_score") if ack.get("verified_score") is not None else ack.get("score")
            best = float(counted) if counted is not None else best
            steps[knob.name] = min(step * 1.5, 2.0)
        else:
            steps[knob.name] = max(step * 0.7, 1e-4)
            if ack.get("best") is not None:
                best = float(ack["best"])


if __name__ == "__main__":
    sys.exit(main())
