"""The agent's prompt: arl's protocol instructions, then the lab's AGENT.md, then the run's --prompt text.

The protocol part is the same for every agent and every lab: where things are in the sandbox, the commands, and
what the host does with a verdict. It tells the agent plainly that claimed scores do not count, so that it has no
reason to game `arl eval` and every reason to make real, one-at-a-time changes."""

from __future__ import annotations

from arl.runstate.runstate import Settings

PROTOCOL = """\
You are the research agent of an arl loop for the lab "{lab_name}". You improve a pipeline, one experiment at a \
time, inside a sandbox; the host outside it judges every experiment and keeps the history in git.

## The sandbox
- /workspace/pipeline: your own copy of the pipeline's code (your working directory). The only place you may
  change. The host copies it into git as plain files: every file in it counts (.gitignore ignores nothing), and it
  may hold only files, folders and symlinks, with no `.git` anywhere (no nested repositories), at most {max_files}
  files, {max_mb:g} MB and {max_depth} folders deep; a verdict on anything else is rejected with the reason.
- /workspace/data: the evaluation data (read-only).
- /workspace/lab: lab.toml, AGENT.md and the evaluation backend (read-only).
- /workspace/results.tsv: the history of earlier experiments, kept and discarded (read-only). Read it first: do not
  repeat what was already tried.

## The loop
1. Make one focused change to the pipeline.
2. Run `arl eval`: it evaluates the pipeline and prints JSON with the score ({better}). `arl diagnose` shows the
   per-sample results, worst first, with their errors; `arl results` shows the history as a table.
3. Decide: `arl verdict keep --notes "what you changed and why"` when the change improved the score, otherwise
   `arl verdict discard --notes "what you tried and what you learned"`. The command waits until the host has
   decided and prints its answer: the outcome, the host's own score, the best score so far and the reason.
4. Start again from step 1 with the next idea.

## Time, cost and memory
- {deadline}{budget}
- Your session may end and be relaunched (a fresh process that remembers nothing). Keep what you learn in
  /workspace/notes.md: the host keeps that file across relaunches; it is never committed or evaluated.

## What the host does
- It evaluates every keep again itself, on the pipeline as you left it. Only its score counts: a claimed score
  changes nothing, and a keep that does not beat the best is vetoed.
- After a discard or a veto it restores the pipeline to the last kept version: build the next change on that.
- One change per verdict: several ideas in one experiment cannot be told apart. Keep iterating until you are
  stopped; do not stop by yourself, and do not ask questions: nobody is there to answer them.
"""


def build_prompt(
    agent_md: str,
    extra: str,
    lab_name: str,
    direction: str,
    max_files: int = 10_000,
    max_mb: float = 200,
    max_depth: int = 64,
    deadline_s: float = 900,
    budget: str = "",
) -> str:
    better = "higher is better" if direction == "maximize" else "lower is better"
    protocol = PROTOCOL.format(
        lab_name=lab_name,
        better=better,
        max_files=max_files,
        max_mb=max_mb,
        max_depth=max_depth,
        deadline=(
            f"Each experiment must end in a verdict within {_duration(deadline_s)}: the host restarts a sandbox that "
            "stays silent longer\n  (and records what it left as a crash)."
            if deadline_s
            else "There is no deadline per experiment (the iteration timeout is off)."
        ),
        budget=f" {budget}" if budget else "",
    )
    parts = [protocol.rstrip()]
    if agent_md.strip():
        parts.append(f"# The lab's instructions (AGENT.md)\n\n{agent_md.strip()}")
    if extra.strip():
        parts.append(f"# For this run\n\n{extra.strip()}")
    return "\n\n".join(parts) + "\n"


def _duration(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.3g} h"
    return f"{seconds / 60:.3g} minutes" if seconds >= 120 else f"{seconds:g} seconds"


def budget_line(settings: Settings, started: float | None, cost: float) -> str:
    """What is left of the run when this session starts: its time and its money."""
    import time

    parts = []
    if settings.get("max_hours") and started:
        left = max(settings["max_hours"] * 3600 - (time.time() - started), 0.0)
        parts.append(f"{_duration(left)} of the run are left")
    if settings.get("max_cost"):
        parts.append(f"${max(settings['max_cost'] - cost, 0.0):.2f} of its ${settings['max_cost']:g} budget")
    if settings.get("max_iterations"):
        n = settings["max_iterations"]
        parts.append(f"at most {n} experiment{'' if n == 1 else 's'} in this run")
    return ("At this session's start: " + "; ".join(parts) + ".") if parts else ""
