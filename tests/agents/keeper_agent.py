"""A command agent for the parallel-verification tests (run inside the sandbox): each slot follows its own plan of
(X, SLEEP, action) experiments on the knob pipeline, then waits. SLEEP slows only the host's verification (the run
phase there has no /workspace/data); the agent's own `arl eval` is instant."""

import os
import subprocess
import sys
import time
from pathlib import Path

PLANS = {
    # slot 0: a modest keep whose verification is slow: overtaken by slot 1's better, faster one
    "order:0": [(0.0, 4.5, 8.0, "keep")],
    # slot 1: starts later, three quick improving keeps
    "order:1": [(3.0, 3.5, 0.5, "keep"), (0.0, 3.2, 0.5, "keep"), (0.0, 3.1, 0.5, "keep")],
    # slot 2: discards, decided while the keeps are being verified
    "order:2": [(0.5, 40.0, 0.0, "discard")] * 6,
    # one slow verification to kill the run in the middle of, and discards beside it
    "kill:0": [(0.0, 4.5, 20.0, "keep")],
    "kill:1": [(1.0, 40.0, 0.0, "discard")] * 20,
}


def main() -> int:
    plan = PLANS[f"{sys.argv[1] if len(sys.argv) > 1 else 'order'}:{os.environ['ARL_SLOT']}"]
    done = Path("/workspace/notes.md")
    start = len(done.read_text().splitlines()) if done.exists() else 0  # a relaunched session goes on, not over
    for wait, x, sleep, action in plan[start:]:
        time.sleep(wait)
        Path("/workspace/pipeline/knob.py").write_text(f"X = {x}\nSLEEP = {sleep}\n")
        subprocess.run(["arl", "eval", "--data", "/workspace/data"], check=True, capture_output=True)
        with open(done, "a") as f:  # before the verdict: a session killed while it waits does not propose it again
            f.write(f"X={x}\n")
        subprocess.run(["arl", "verdict", action, "--notes", f"X={x}"], capture_output=True)
    time.sleep(3600)
    return 0


if __name__ == "__main__":
    sys.exit(main())
