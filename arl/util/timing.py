"""Phase timings of the host's work per verdict, logged to .arl/runs.jsonl for `make bench`."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

current: dict[str, float] = {}


@contextlib.contextmanager
def phase(name: str) -> Iterator[None]:
    t0 = time.perf_counter()
    try:
        yield
    finally:
        current[name] = current.get(name, 0.0) + time.perf_counter() - t0


def take() -> dict[str, float]:
    out = {k: round(v, 6) for k, v in current.items()}
    current.clear()
    return out
