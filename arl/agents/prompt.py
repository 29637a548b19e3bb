"""The agent's prompt: arl's protocol instructions, the lab's AGENT.md, and the run's --prompt."""

from __future__ import annotations

PROTOCOL = """You are improving a research pipeline inside a sandbox, in a loop run by arl.

- /workspace/pipeline is the code you may change (your working directory). Nothing else is writable.
- /workspace/data is the evaluation data (read-only); /workspace/lab holds the lab's config and backend (read-only);
  /workspace/results.tsv is the history of earlier experiments (read-only).
- Make one focused change, then run `arl eval` (prints the score as JSON; {direction}) and `arl diagnose` for
  per-sample results, worst first. `arl results` shows the history.
- Then run `arl verdict keep --notes "what you changed and why"` if the change improved the score, or
  `arl verdict discard --notes "..."` otherwise. It waits for the host and prints its answer: the outcome, the host's
  own score, the best so far and a reason. The host re-evaluates every keep itself; only its score counts.
- After a discard or a veto the host restores the pipeline to the last kept version. Then start the next idea.
  Keep going: one change per verdict, until you are stopped.
"""


def build_prompt(agent_md: str, extra: str, lab_name: str, direction: str) -> str:
    better = "higher is better" if direction == "maximize" else "lower is better"
    parts = [PROTOCOL.format(direction=better), f"# The lab: {lab_name}\n\n{agent_md.strip()}"]
    if extra.strip():
        parts.append(f"# Also\n\n{extra.strip()}")
    return "\n\n".join(parts) + "\n"
