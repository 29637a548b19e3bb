"""Removing a frozen agent: nothing in it may act once it is frozen, not even while it is being removed.

A run that stops leaves its agent frozen right after the last ack; teardown removes it. `docker rm --force` kills the
container's first process and thaws the others, which can run for a few milliseconds: enough to read that ack and
start the next edit, which teardown then records as an `interrupted` experiment the run never had (seen as a flaky
extra row under load). Twenty processes wait for an "ack" file, frozen; the ack appears; the container is removed.
The engine's own `docker rm --force` of the same setup let some waiters act in 3 of 5 runs here (7 and 18 of 20 with
a 1 ms poll): too uncertain for a test of its own, so this one can miss a regression, never invent one."""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from arl.sandbox import containers

from .loophelpers import wait_for

pytestmark = pytest.mark.docker

WAITERS = 20
WAITER = """import os, sys, time
while not os.path.exists("/w/ack"):
    time.sleep(0.01)
open("/w/acted-" + sys.argv[1], "w").write("acted")
"""


@pytest.fixture
def name(tmp_path: Path) -> Iterator[str]:
    name = f"arl-test-frozen-{os.getpid()}-{tmp_path.name[-12:].strip('_')}"
    yield name
    subprocess.run(["docker", "rm", "--force", name], capture_output=True)


def frozen_waiters(base_image: str, folder: Path, name: str) -> None:
    (folder / "waiter.py").write_text(WAITER)
    script = f"for i in $(seq 1 {WAITERS}); do python3 /w/waiter.py $i & done; wait"
    subprocess.run(["docker", "rm", "--force", name], capture_output=True)
    subprocess.run(
        ["docker", "run", "-d", "--init", "--name", name, "-v", f"{folder}:/w", base_image, "sh", "-c", script],
        check=True,
        capture_output=True,
    )

    def all_started() -> bool:
        top = subprocess.run(["docker", "top", name], capture_output=True, text=True).stdout
        return len(re.findall(r"python3 /w/waiter\.py \d+", top)) == WAITERS

    wait_for(all_started, 30, "the waiters to start")
    subprocess.run(["docker", "pause", name], check=True, capture_output=True)


def acted(folder: Path) -> int:
    time.sleep(0.5)  # a process that escaped writes within milliseconds of the thaw: none may have, in this window
    return len(list(folder.glob("acted-*")))


def test_a_frozen_container_is_removed_without_acting_again(base_image: str, tmp_path: Path, name: str) -> None:
    frozen_waiters(base_image, tmp_path, name)
    (tmp_path / "ack").write_text("{}")
    containers.stop(name, grace=1, remove=False)  # as teardown stops a frozen agent
    assert not containers.state(name).exists
    assert acted(tmp_path) == 0
