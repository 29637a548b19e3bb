"""`[engine] broker = "submit-host"`: the API broker on the submitting host, reached from each SLURM job by a relay.

Compute nodes often have no outbound network. Then the slots' broker runs here, as with the local engine (one
socket per slot, so usage is counted per slot), and a gate listens on TCP for the jobs. In each job, a relay
listens on the unix socket the container mounts (the broker's usual place) and forwards every connection to the
gate, which it opens with the line `<secret> <slot>`. The gate reads that line (bounded, with a deadline), compares
the secret in constant time and forwards the rest to that slot's broker socket, or closes the connection having
forwarded nothing. The secret is random per run, in a 0600 file under `.arl/` (shared with the nodes, never
mounted into a container), and never on a command line (`ps` and squeue show those).

    python -m arl.broker.relay gate tcp:HOST:PORT --secret FILE --route K=unix:PATH ... [--ready FILE] [--cap N]
    python -m arl.broker.relay relay unix:PATH --to tcp:HOST:PORT --secret FILE --slot K [--ready FILE]

Both are arl.broker.forward's forwarder (its caps, its handling of fd exhaustion), with the first line added."""

from __future__ import annotations

import argparse
import hmac
import os
import secrets
import selectors
import socket
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from arl.broker import forward
from arl.config.engine import address_parts
from arl.errors import ArlError
from arl.util import sh

if TYPE_CHECKING:
    from arl.config.config import LabConfig

LINE_BYTES = 256  # the first line: 64 hex digits, a space, a slot number
LINE_TIMEOUT = 5.0  # a connection that has not said it by then is closed
PENDING = 16  # connections that still owe their first line: more are closed at once


@dataclass(eq=False)
class _Waiting:
    sock: socket.socket
    origin: forward._Listener
    peer: str
    line: bytearray = field(default_factory=bytearray)
    since: float = field(default_factory=time.monotonic)


class Gate(forward.Forwarder):
    """The submit host's end: a connection is forwarded to its slot's broker only after the run's secret."""

    def __init__(self, servers: list[socket.socket], secret: bytes, routes: dict[str, str], cap: int) -> None:
        targets = {name: forward._endpoint(target) for name, target in routes.items()}
        super().__init__(servers, next(iter(targets.values())), cap)
        self.secret, self.targets = secret, targets
        self.waiting: dict[socket.socket, _Waiting] = {}

    def _accept(self, lst: forward._Listener) -> None:
        try:
            client, peer = lst.sock.accept()
        except BlockingIOError:
            return
        except OSError as e:
            return self._pause(lst, "accept", e)
        if lst.pairs >= self.cap or len(self.waiting) >= PENDING:
            client.close()
            return
        client.setblocking(False)
        lst.pairs += 1  # its place is taken from now on: a pair keeps it, a refusal gives it back
        where = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else "?"
        self.waiting[client] = _Waiting(client, lst, where)
        self.sel.register(client, selectors.EVENT_READ)

    def _other(self, sock: socket.socket) -> None:
        w = self.waiting.get(sock)
        if w is None:
            return
        try:
            data = sock.recv(LINE_BYTES + 1 - len(w.line))
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        w.line += data
        line, newline, rest = bytes(w.line).partition(b"\n")
        if not newline:
            if data and len(w.line) <= LINE_BYTES:
                return  # the rest of the line is on its way
            return self._refuse(w, "no first line")
        secret, _, slot = line.partition(b" ")
        target = self.targets.get(slot.decode("ascii", "replace"))
        # compared in full, whatever the slot: how long a refusal takes says nothing about the secret
        if not hmac.compare_digest(secret, self.secret) or target is None:
            return self._refuse(w, "a wrong secret" if target else "a wrong secret or slot")
        self._release(w)
        self._open(w.origin, sock, target, rest)  # `rest`: the client's first bytes past the line

    def _release(self, w: _Waiting) -> None:
        del self.waiting[w.sock]
        self.sel.unregister(w.sock)
        w.origin.pairs -= 1  # _open takes it again

    def _refuse(self, w: _Waiting, why: str) -> None:
        # said before the close: once the peer sees its connection end, the log already holds why
        self._say(f"refused a connection from {w.peer}: {why}")
        self._release(w)
        w.sock.close()

    def _expire(self) -> None:
        super()._expire()
        now = time.monotonic()
        for w in list(self.waiting.values()):
            if now - w.since > LINE_TIMEOUT:
                self._refuse(w, f"no first line within {LINE_TIMEOUT:g} s")


def read_secret(path: str | Path) -> bytes:
    with open(path, "rb") as f:
        secret = f.read(LINE_BYTES).strip()
    if not secret or any(c in secret for c in b" \n\r"):
        raise ValueError(f"{path} holds no secret")
    return secret


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m arl.broker.relay", description="A SLURM job's relay, or its gate.")
    parser.add_argument("role", choices=("gate", "relay"))
    parser.add_argument("listen", help="tcp:HOST:PORT (gate) or unix:PATH (relay)")
    parser.add_argument("--secret", required=True, help="the file with the run's secret")
    parser.add_argument("--route", action="append", default=[], help="gate: K=unix:PATH, slot K's broker socket")
    parser.add_argument("--to", help="relay: tcp:HOST:PORT of the gate")
    parser.add_argument("--slot", help="relay: the slot whose broker it reaches")
    parser.add_argument("--ready", help="a file created once the socket listens (with its address)")
    parser.add_argument("--cap", type=int, default=forward.MAX_CONNECTIONS, help="connections at once")
    args = parser.parse_args(argv)
    if (args.role == "gate") != bool(args.route) or (args.role == "relay") != bool(args.to and args.slot):
        parser.error("a gate needs --route K=unix:PATH; a relay needs --to and --slot")
    try:
        secret = read_secret(args.secret)
    except (OSError, ValueError) as e:
        raise SystemExit(f"arl.broker.relay: {e}") from e
    forward._room(1, args.cap)
    server = forward.listen(args.listen)
    if args.role == "relay":
        os.chmod(server.getsockname(), 0o666)  # the broker's place: the container's user (not ours) connects to it
        fwd: forward.Forwarder = forward.Forwarder(
            [server], forward._endpoint(args.to), args.cap, secret + b" " + args.slot.encode() + b"\n"
        )
    else:
        fwd = Gate([server], secret, dict(r.split("=", 1) for r in args.route), args.cap)
    if args.ready:
        forward.ready(args.ready, [server])
    fwd.run()
    return 0


# -- the gate as a process of the run (on the submitting host)
# The gate's files in the lab's state folder: the run's secret (0600), the address it listens on (what each job's
# relay connects to), its pid.
SECRET, ADDRESS, PID = "relay.secret", "relay.address", "relay.pid"


def host_socket(state_dir: Path, slot: int) -> Path:
    """Slot k's broker socket on the submitting host: not the slot's folder, where its job's relay listens (the
    folder is shared with the nodes, and both would take the same name)."""
    return state_dir / "broker" / "host" / f"slot-{slot}.sock"


def new_secret(cfg: LabConfig) -> Path:
    """A fresh secret for this run, readable by this user alone (the jobs run as this user)."""
    path = cfg.state_dir / SECRET
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_hex(32) + "\n")
    return path


def bind_address(cfg: LabConfig) -> tuple[str, int]:
    """`[engine] broker_address` (HOST[:PORT]), else this host's name: its address is where a cluster's nodes reach
    the login node (a name that resolves to loopback serves the jobs of this host only; set broker_address)."""
    host, port = address_parts(cfg.engine.broker_address) or (socket.getfqdn(), 0)
    try:
        return (host if host == "0.0.0.0" else socket.gethostbyname(host)), port
    except OSError as e:
        raise ArlError(f"[engine] broker_address: cannot resolve {host!r} ({e})") from e


def start_gate(cfg: LabConfig, sockets: list[Path], python: str, env: dict[str, str]) -> str:
    """The gate to the broker's `sockets` (slot 0, 1, ...), with a new secret; its address, as the jobs reach it."""
    from arl.sandbox.service import stop_group

    stop_group(cfg.state_dir / PID)
    secret = new_secret(cfg)
    host, port = bind_address(cfg)
    ready = cfg.state_dir / ADDRESS
    ready.unlink(missing_ok=True)
    log = cfg.state_dir / "logs" / "relay-gate.log"
    argv = [python, "-m", "arl.broker.relay", "gate", f"tcp:{host}:{port}", "--secret", str(secret)]
    for slot, sock in enumerate(sockets):
        argv += ["--route", f"{slot}=unix:{sock}"]
    argv += ["--ready", str(ready), "--cap", str(forward.MAX_CONNECTIONS * max(1, len(sockets)))]
    proc = sh.spawn(argv, log, env=env)
    (cfg.state_dir / PID).write_text(f"{proc.pid}\n")
    if not sh.wait_ready(proc, lambda: ready.exists() and bool(ready.read_text().strip()), 10):
        stop_group(cfg.state_dir / PID)
        raise ArlError(f"the relays' gate did not start; see {log}")
    return reach(cfg) or ""


def reach(cfg: LabConfig) -> str | None:
    """tcp:HOST:PORT of the running gate as a node reaches it (a gate on every interface: this host's name)."""
    try:
        bound = (cfg.state_dir / ADDRESS).read_text().split()[0]
    except (OSError, IndexError):
        return None
    host, port = forward.tcp_address(bound)
    return f"tcp:{socket.getfqdn() if host == '0.0.0.0' else host}:{port}"


def relay_spec(cfg: LabConfig, slot: int, sock: Path, name: str) -> dict[str, Any] | None:
    """What a slot's job starts beside its container instead of a broker (None: no gate runs, no broker)."""
    to = reach(cfg)
    if to is None:
        return None
    ready = cfg.state_dir / "engine" / f"{name}.relay-ready"
    argv = [sys.executable, "-m", "arl.broker.relay", "relay", f"unix:{sock}", "--to", to]
    secret = str(cfg.state_dir / SECRET)
    argv += ["--secret", secret, "--slot", str(slot), "--ready", str(ready)]
    log = str(cfg.state_dir / "logs" / f"relay-slot{slot}.log")
    return {
        "argv": argv,
        "socket": str(sock),
        "ready": str(ready),
        "log": log,
        "to": to,
        "slot": slot,
        "secret": secret,
    }


def knock(spec: dict[str, Any], timeout: float = 10.0) -> str:
    """Before the container starts: '' once the gate takes a connection (opened with the secret and closed at once:
    its broker sees an empty connection), else why not, so a gate the node cannot reach is named, not guessed."""
    host, port = forward.tcp_address(str(spec["to"]))
    try:
        line = read_secret(spec["secret"]) + f" {spec['slot']}\n".encode()
    except (OSError, ValueError) as e:
        return f"the job's relay has no secret to open its connections with: {e}"
    try:
        with socket.create_connection((host, port), timeout=timeout) as conn:
            conn.sendall(line)
    except OSError as e:
        return (
            f"the job's relay cannot reach the API broker's gate at {host}:{port} on the submitting host ({e}); "
            "[engine] broker_address must be an address the nodes reach"
        )
    return ""


def stop_gate(cfg: LabConfig) -> None:
    from arl.sandbox.service import stop_group

    stop_group(cfg.state_dir / PID)
    (cfg.state_dir / ADDRESS).unlink(missing_ok=True)
    (cfg.state_dir / SECRET).unlink(missing_ok=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
