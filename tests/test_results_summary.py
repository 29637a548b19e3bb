"""The history's summary in the run state (next id, best and its id, plateau, cost): kept up to date as rows are
appended, always what a read of the whole results.tsv gives, and made again when the file changed otherwise."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any, cast

import pytest

from arl.config import config
from arl.history import results
from arl.history.format import Row
from arl.runstate import state
from arl.runstate.runstate import RunState
from tests.test_config import write_lab

OUTCOMES = ["keep", "keep", "discard", "vetoed", "crash", "interrupted", "baseline"]


def _row(i: int, outcome: str, score: float | None, verified: float | None = None) -> Row:
    row: dict[str, Any] = {
        "id": i, "run": 1, "time": "2024-05-01T10:00:00Z", "outcome": outcome, "score": score,
        "verified_score": verified, "holdout_score": None, "best": None, "cost_usd": 0.125 * (i % 3),
        "commit": None, "agent": "offline", "notes": "", "metrics": {}, "slot": 0,
    }  # fmt: skip
    return cast(Row, row)


def _made_from_the_file(cfg: config.LabConfig) -> dict[str, Any]:
    results._parsed.clear()
    made = dict(state.history(cfg, cast(RunState, {})))
    return {k: v for k, v in made.items() if k not in ("size", "mtime_ns")}


@pytest.mark.parametrize("direction", ["minimize", "maximize"])
@pytest.mark.parametrize("seed", range(4))
def test_the_summary_kept_row_by_row_is_what_the_whole_file_gives(tmp_path: Path, direction: str, seed: int) -> None:
    toml = f'[lab]\nname = "t"\ndirection = "{direction}"\n\n[backend]\nclass = "B"\n'
    cfg = config.load(write_lab(tmp_path / "lab", toml=toml) / "lab.toml")
    rng = random.Random(seed)
    st = cast(RunState, {})
    state.record(cfg, st, _row(0, "baseline", 5.0, 5.0))
    for i in range(1, 60):
        outcome = rng.choice(OUTCOMES)
        score = None if rng.random() < 0.1 else round(rng.uniform(0, 10), 3)
        verified = score if outcome in ("keep", "baseline") and rng.random() < 0.5 else None
        state.record(cfg, st, _row(i + rng.choice([0, 0, 3]), outcome, score, verified))
        held = st.get("history")
        assert held is not None and held["size"] == cfg.results_file.stat().st_size  # kept, not made again
        kept = {k: v for k, v in held.items() if k not in ("size", "mtime_ns")}
        assert kept == _made_from_the_file(cfg), f"after row {i}"


def test_a_file_changed_otherwise_is_read_again(tmp_path: Path) -> None:
    cfg = config.load(write_lab(tmp_path / "lab") / "lab.toml")
    st = cast(RunState, {})
    state.record(cfg, st, _row(0, "baseline", 5.0))
    size = cfg.results_file.stat().st_size
    state.record(cfg, st, _row(1, "keep", 1.0))
    assert state.history(cfg, st)["best_id"] == 1
    with open(cfg.results_file, "rb+") as f:  # the keep's row cut, as a veto cuts it
        f.truncate(size)
    assert state.history(cfg, st)["best_id"] == 0 and state.history(cfg, st)["next_id"] == 1
    cfg.results_file.unlink()
    assert state.history(cfg, st)["next_id"] == 0
