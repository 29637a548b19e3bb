"""`python -m arl.loop.verify_job LAB SLOT SEQ TREE`: one keep's verification (and its holdout), beside the decider.

Started by arl.loop.verifying, never by people. It reads the run state and writes only its result file (atomically):
the decider records the outcome."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from arl.evaluation.verification import VerificationFailed, host_evaluate
from arl.history import results
from arl.loop.run import data_dir, open_run
from arl.loop.verifying import result_path
from arl.util.fsutil import write_json


def main(argv: list[str]) -> int:
    lab, slot, seq, tree = argv[0], int(argv[1]), int(argv[2]), argv[3]
    cfg, st = open_run(lab)
    s = st["settings"]
    out: dict[str, Any]
    try:
        res = host_evaluate(cfg, st, data_dir(st), s["repeats"], tree, slot)
        out = dict(
            ok=True,
            score=res.score,
            scores=res.scores,
            metrics=res.metrics,
            seconds=res.seconds,
            split=res.split,
            failures=list(res.failures),
            holdout=None,
        )
        # The holdout of a keep that beats the best as it is now: the best only gets better, so a keep the decider
        # accepts later beat this one too, and has its holdout score.
        best, _ = results.best_of(cfg, results.read(cfg.results_file).rows)
        holdout = s.get("holdout")
        if holdout and cfg.better(res.score, best, s["min_improvement"]):
            try:
                out["holdout"] = host_evaluate(cfg, st, Path(holdout), 1, tree, slot).score
            except VerificationFailed:
                pass  # a holdout that does not evaluate hides nothing and decides nothing
    except VerificationFailed as e:
        out = {"ok": False, "error": str(e)}
    write_json(result_path(cfg, slot, seq), out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
