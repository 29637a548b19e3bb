"""`[engine] broker = "submit-host"` on a real SLURM cluster (started by the test) with a real Claude Code agent and
the scripted API: the broker runs on the submitting host, the slot's job runs a relay (no broker) beside its
container, the agent's requests reach the API through relay -> gate -> broker and are counted for its slot, and a
connection to the gate without the run's secret is closed having reached nothing."""

from __future__ import annotations

import json
import re
import socket
from pathlib import Path

import pytest

from .claude_lab import (
    claude_image_fixture,  # noqa: F401  (a fixture)
    lab_name,
    served_cost,
    slurm_run,
    status,
)
from .loophelpers import check_history, containers_of, wait_for
from .slurm_cluster import ClusterFactory

pytestmark = [pytest.mark.docker, pytest.mark.lab(image="claude_image", own_name=True)]
INTRUDER = "intruder-0b5e"  # in the body of a request sent to the gate without the secret


def test_claude_through_a_relay_to_the_submit_host_broker(
    lab: Path, slurm_cluster: ClusterFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    cluster = slurm_cluster(gpus=1)
    why = "a Claude Code agent as a SLURM job, its broker on this host"
    arl = lab / ".arl"
    with slurm_run(lab, cluster, monkeypatch, 1, why, broker="submit-host") as live:
        ended = ["(the run ended)"]
        poll = live.proc.poll
        beside = wait_for(lambda: _beside_the_container(arl) or (None if poll() is None else ended), 300, "it")
        assert beside != ended, live.log.read_text()[-4000:]
        broker = (arl / "broker.pid").read_text().strip()
        assert "arl.agents.brokered" in Path(f"/proc/{broker}/cmdline").read_bytes().decode()
        secret = (arl / "relay.secret").read_text().strip()
        assert oct((arl / "relay.secret").stat().st_mode & 0o777) == "0o600"
        assert _knock(arl, "0" * 64) == b""  # a wrong secret: closed, no answer
        assert live.proc.wait(400) == 0, live.log.read_text()[-4000:]
        main, everything = live.api.main_requests(), list(live.api.requests)
    text = live.log.read_text()
    # no broker in the job: its runner's children are the relay and the container's CLI
    assert any("arl.broker.relay relay unix:" in c for c in beside), beside
    assert not any("arl.agents.brokered" in c for c in beside), beside
    statuses = [json.loads(p.read_text()) for p in (arl / "engine").glob("*.status.json")]
    assert statuses and all(s["beside"] == "relay" for s in statuses), statuses
    assert "each slot's SLURM job relays to it at tcp:" in text, text[-3000:]
    assert not (arl / "logs" / "broker-slot0.log").exists()  # the log of a broker in the job
    # the container mounts neither the secret nor a folder that holds it (the docker run line the job printed)
    run_line = next(
        ln
        for p in (arl / "logs").glob("*.job.log")
        for ln in p.read_text().splitlines()
        if ln.startswith("+ docker run ")
    )
    sources = re.findall(r"src=([^,\s]+)", run_line)
    assert sources and not [src for src in sources if (arl / "relay.secret").is_relative_to(src)], run_line
    # the agent's requests reached the API through relay -> gate -> this host's broker, counted for its slot
    assert main and {r.conversation for r in main} == {0}
    usage = [json.loads(ln) for ln in (arl / "logs" / "broker-usage.jsonl").read_text().splitlines()]
    assert {u.get("slot") for u in usage if "model" in u} == {0}
    assert not [r for r in everything if INTRUDER in json.dumps(r.body)]  # the knock reached nothing
    assert "refused a connection from" in (arl / "logs" / "relay-gate.log").read_text()
    check_history(lab, lab_name(lab))
    st = status(lab)
    assert st["cost_usd"] > 0 and st["cost_usd"] == pytest.approx(served_cost(main), abs=1e-9 * len(main))
    # the run's end stopped the broker and the gate, removed the secret; it is in no file, and no job is left
    assert not (arl / "relay.secret").exists() and not (arl / "relay.pid").exists()
    assert not Path(f"/proc/{broker}").exists()
    for path in arl.rglob("*"):
        if path.is_file() and not path.is_symlink():
            assert secret.encode() not in path.read_bytes() and live.sec.key.encode() not in path.read_bytes(), path
    assert [j for j in cluster.jobs() if j.comment.startswith("arl:")] == [] and containers_of(lab) == []


def _beside_the_container(arl: Path) -> list[str] | None:
    """The command lines of the processes the slot's runner started (once its relay runs; None until then)."""
    for path in (arl / "engine").glob("*.status.json"):
        try:
            st = json.loads(path.read_text())
        except ValueError:
            continue
        if st.get("state") == "running":
            lines = [_cmdline(pid) for pid in _descendants(int(st["pid"]))]
            return lines if any("arl.broker.relay" in c for c in lines) else None
    return None


def _descendants(root: int) -> list[int]:
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue
        parents[int(stat.parent.name)] = int(fields[1])
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        kids = [child for child, parent in parents.items() if parent == pid]
        found += kids
        todo += kids
    return found


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _knock(arl: Path, secret: str) -> bytes:
    """A request to the gate that opens with `secret`: what comes back before the gate closes it."""
    host, _, port = (arl / "relay.address").read_text().split()[0].removeprefix("tcp:").rpartition(":")
    body = json.dumps({"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": INTRUDER}]})
    request = f"POST /v1/messages HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n{body}"
    with socket.create_connection((host, int(port)), timeout=10) as conn:
        conn.sendall(f"{secret} 0\n{request}".encode())
        try:
            return conn.recv(4096)
        except ConnectionResetError:
            return b""
