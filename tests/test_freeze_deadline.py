"""A thaw that the engine never answers does not hang the decider.

A `docker exec` that starts while the decider freezes its container (a person looking into a slot during a
decision) can leave runc's exec frozen with the container, and the engine's lock on the container with it: `docker
unpause` then never returns, and every later command on that container waits too. arl's unpause has a deadline;
past it, arl thaws the container's freezer cgroup itself, which lets the frozen exec finish and the engine go.

The hang is a race (an exec and a pause at the same moment), so the test makes it happen: exec and pause
together, up to 100 times, the pause a little later each time, until one unpause runs past its deadline. Each
round must end with the container thawed and answering, in bounded time."""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Iterator

import pytest

from arl.sandbox import containers

pytestmark = pytest.mark.docker

DEADLINE = 4.0


def _freezer_state(cid: str) -> str:
    for path in (
        f"/sys/fs/cgroup/freezer/docker/{cid}/freezer.state",
        f"/sys/fs/cgroup/freezer/system.slice/docker-{cid}.scope/freezer.state",
        f"/sys/fs/cgroup/system.slice/docker-{cid}.scope/cgroup.freeze",
        f"/sys/fs/cgroup/docker/{cid}/cgroup.freeze",
    ):
        try:
            with open(path) as f:
                text = f.read().strip()
        except OSError:
            continue
        return {"0": "THAWED", "1": "FROZEN"}.get(text, text)
    return "unknown"


@pytest.fixture
def sleeper(base_image: str) -> Iterator[tuple[str, str]]:
    name = f"arl-test-freeze-{uuid.uuid4().hex[:8]}"
    cid = subprocess.run(
        ["docker", "run", "-d", "--init", "--name", name, "--label", "arl.test=freeze", base_image, "sleep", "600"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    yield name, cid
    subprocess.run(["docker", "rm", "-f", name], capture_output=True, timeout=120)


def test_unpause_past_its_deadline_thaws_the_container_itself(
    sleeper: tuple[str, str], capfd: pytest.CaptureFixture[str]
) -> None:
    name, cid = sleeper
    if _freezer_state(cid) == "unknown":
        pytest.skip("no freezer cgroup of the container is visible here")
    hit = 0
    for k in range(100):
        execs = subprocess.Popen(["docker", "exec", name, "true"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(k % 12 * 0.005)  # the race's window moves with the machine's load: the pause walks across it
        frozen = containers.pause(name)
        t0 = time.monotonic()
        containers.unpause(name, deadline=DEADLINE)
        took = time.monotonic() - t0
        assert took < DEADLINE + 15, f"unpause took {took:.1f} s"
        if frozen:
            assert _freezer_state(cid) == "THAWED"
        execs.wait(timeout=60)  # a frozen exec is let go by the thaw
        err = capfd.readouterr().err
        if "did not return" in err:
            assert "thawed through /sys/fs/cgroup/" in err, err
            hit += 1
            break
    # Whatever happened, the engine answers for the container again: it is not left holding its lock.
    done = subprocess.run(["docker", "inspect", "-f", "{{.State.Status}}", name], capture_output=True, timeout=30)
    assert done.returncode == 0
    print(f"an unpause past its deadline in {hit} of the rounds")
