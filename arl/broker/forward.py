"""A tiny byte forwarder between TCP and unix sockets: how the host service reaches the sandbox.

The host forwards unix sockets in .arl/ to the service on 127.0.0.1, one per slot (and one for the verification
containers), each in a folder that only its own containers mount; a container, even with `--network none`, forwards
127.0.0.1:PORT to its socket. No port is opened on any network interface.

    python -m arl.broker.forward --to TARGET [--ready FILE] [--cap N] LISTEN [LISTEN ...]
    python -m arl.broker.forward LISTEN TARGET [FILE]   (one socket: the form a container's command line uses)
    (TARGET and each LISTEN: tcp:HOST:PORT or unix:PATH)

FILE is created once every listening socket is bound (it holds their addresses), so a caller can wait for it.
A SLURM job's relay and its submit-host end (arl/broker/relay.py) are this forwarder with a first line added.

One thread and non-blocking sockets: what a flood of connections can take is bounded (N pairs per listening socket,
at most BUFFER bytes queued per direction), and a listener's cap is its own: a slot that floods its socket leaves
the other slots' sockets their places. A connection over its listener's cap is accepted and closed at once, and an
accept() that fails (out of fds, EMFILE) pauses that listener briefly instead of ending the forwarder."""

from __future__ import annotations

import argparse
import errno
import os
import resource
import selectors
import socket
import sys
import time
from dataclasses import dataclass, field

MAX_CONNECTIONS = 64  # per listening socket, so per slot
BUFFER = 256 * 1024  # bytes queued toward a side that does not read, per direction: then its source is not read
CONNECT_TIMEOUT = 10.0
ACCEPT_PAUSE = 0.1  # after a failed accept(): the fds that were short are freed as connections end


def tcp_address(spec: str) -> tuple[str, int]:
    """HOST and PORT of `tcp:HOST:PORT` or `HOST:PORT` (no host: 127.0.0.1)."""
    host, _, port = spec.removeprefix("tcp:").rpartition(":")
    return host or "127.0.0.1", int(port)


def _endpoint(spec: str) -> tuple[int, object]:
    kind, _, rest = spec.partition(":")
    if kind == "unix":
        return socket.AF_UNIX, rest
    if kind == "tcp":
        return socket.AF_INET, tcp_address(rest)
    raise SystemExit(f"arl.broker.forward: bad endpoint {spec!r} (tcp:HOST:PORT or unix:PATH)")


@dataclass
class _Side:
    sock: socket.socket
    out: bytearray = field(default_factory=bytearray)  # bytes waiting to be written to this side
    eof: bool = False  # nothing more will be read from this side
    shut: bool = False  # told EOF: nothing more will be written to this side


@dataclass(eq=False)
class _Listener:
    sock: socket.socket
    pairs: int = 0  # connections of this listener being forwarded
    paused_until: float = 0.0  # after a failed accept(), not listening until then


@dataclass
class _Pair:
    a: _Side
    b: _Side
    origin: _Listener
    connected: bool = False
    since: float = field(default_factory=time.monotonic)

    def other(self, side: _Side) -> _Side:
        return self.b if side is self.a else self.a


class Forwarder:
    def __init__(
        self, servers: list[socket.socket], target: tuple[int, object], cap: int = MAX_CONNECTIONS, hello: bytes = b""
    ) -> None:
        self.target, self.cap, self.hello = target, cap, hello  # hello: what each connection's target gets first
        self.sel = selectors.DefaultSelector()
        self.listeners = {server: _Listener(server) for server in servers}
        self.pairs: dict[socket.socket, tuple[_Pair, _Side]] = {}
        self.said = 0.0
        for server in servers:
            server.setblocking(False)
            self.sel.register(server, selectors.EVENT_READ)

    def run(self) -> None:
        while True:
            now = time.monotonic()
            for lst in self.listeners.values():
                if lst.paused_until and now >= lst.paused_until:
                    lst.paused_until = 0.0
                    self.sel.register(lst.sock, selectors.EVENT_READ)
            for key, mask in self.sel.select(timeout=1.0):
                if key.fileobj in self.listeners:
                    self._accept(self.listeners[key.fileobj])  # type: ignore[index]
                elif key.fileobj in self.pairs:
                    self._event(*self.pairs[key.fileobj], mask)  # type: ignore[index]
                else:
                    self._other(key.fileobj)  # type: ignore[arg-type]
            self._expire()

    def _accept(self, lst: _Listener) -> None:
        try:
            client, _ = lst.sock.accept()
        except BlockingIOError:
            return
        except OSError as e:  # EMFILE, ENFILE, ENOBUFS...: stop listening a moment rather than spin or die
            return self._pause(lst, "accept", e)
        if lst.pairs >= self.cap:
            client.close()  # refused: this listener's other connections keep their place, the others are untouched
            return
        client.setblocking(False)
        self._open(lst, client, self.target, self.hello)

    def _open(self, lst: _Listener, client: socket.socket, target: tuple[int, object], first: bytes) -> None:
        """Forward `client` to `target`, which gets `first` before the client's own bytes."""
        try:
            upstream = socket.socket(target[0], socket.SOCK_STREAM)
        except OSError as e:
            client.close()
            return self._pause(lst, "socket", e)
        upstream.setblocking(False)
        pair = _Pair(_Side(client), _Side(upstream, bytearray(first)), lst)
        code = upstream.connect_ex(target[1])  # type: ignore[arg-type]
        if code not in (0, errno.EINPROGRESS):  # a unix socket's full backlog (EAGAIN) will not clear for us
            client.close()
            upstream.close()
            return
        pair.connected = code == 0
        lst.pairs += 1
        self.pairs[client] = (pair, pair.a)
        self.pairs[upstream] = (pair, pair.b)
        self._interest(pair)

    def _other(self, sock: socket.socket) -> None:
        """A socket the selector holds that is neither a listener nor a pair's (a subclass's)."""

    def _say(self, text: str) -> None:
        now = time.monotonic()
        if now - self.said >= 1.0:  # a flood must not fill the log as well
            self.said = now
            print(f"arl.broker.forward: {text}", flush=True)

    def _pause(self, lst: _Listener, call: str, e: OSError) -> None:
        self._say(
            f"{call}() failed ({errno.errorcode.get(e.errno or 0, str(e))}); not accepting for {ACCEPT_PAUSE:g} s"
        )
        self.sel.unregister(lst.sock)
        lst.paused_until = time.monotonic() + ACCEPT_PAUSE

    def _event(self, pair: _Pair, side: _Side, mask: int) -> None:
        if not pair.connected and side is pair.b:  # the upstream's connect finished (writable): did it succeed?
            err = side.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:  # said once a second at most: a target that is down must not fill the log
                self._say(f"cannot connect to the target ({os.strerror(err)})")
                return self._close(pair)
            pair.connected = True
        try:
            if mask & selectors.EVENT_WRITE and side.out and pair.connected:
                sent = side.sock.send(side.out)
                del side.out[:sent]
            if mask & selectors.EVENT_READ and (pair.connected or side is pair.a):
                data = side.sock.recv(65536)
                if data:
                    pair.other(side).out += data
                else:
                    side.eof = True
            for s in (pair.a, pair.b):  # a side done reading, its bytes all delivered: the other side hears EOF
                peer = pair.other(s)
                if s.eof and not peer.out and not peer.shut:
                    peer.shut = True
                    peer.sock.shutdown(socket.SHUT_WR)
        except (BlockingIOError, InterruptedError):
            pass
        except OSError:
            return self._close(pair)
        if pair.a.eof and pair.b.eof and not pair.a.out and not pair.b.out:
            return self._close(pair)
        self._interest(pair)

    def _interest(self, pair: _Pair) -> None:
        for side in (pair.a, pair.b):
            mask = 0
            if not side.eof and len(pair.other(side).out) < BUFFER and (pair.connected or side is pair.a):
                mask |= selectors.EVENT_READ
            if side.out or (not pair.connected and side is pair.b):
                mask |= selectors.EVENT_WRITE
            try:
                key = self.sel.get_key(side.sock)
            except KeyError:
                key = None
            if key is None and mask:
                self.sel.register(side.sock, mask)
            elif key is not None and not mask:
                self.sel.unregister(side.sock)
            elif key is not None and key.events != mask:
                self.sel.modify(side.sock, mask)

    def _expire(self) -> None:
        now = time.monotonic()
        for pair, _ in list(self.pairs.values()):
            if not pair.connected and now - pair.since > CONNECT_TIMEOUT:
                self._close(pair)

    def _close(self, pair: _Pair) -> None:
        if pair.a.sock in self.pairs:  # not closed before (_expire meets each pair twice)
            pair.origin.pairs -= 1
        for side in (pair.a, pair.b):
            if self.pairs.pop(side.sock, None) is not None:
                try:
                    self.sel.unregister(side.sock)
                except (KeyError, ValueError):
                    pass
            side.sock.close()


def listen(listen_spec: str) -> socket.socket:
    family, addr = _endpoint(listen_spec)
    server = socket.socket(family, socket.SOCK_STREAM)
    if family == socket.AF_UNIX:
        try:
            os.unlink(str(addr))
        except FileNotFoundError:
            pass
    else:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(addr)  # type: ignore[arg-type]
    server.listen(128)
    return server


def ready(path: str, servers: list[socket.socket]) -> None:
    """The file a caller waits for, with the address each socket is bound to (a port 0 got one of its own)."""
    names = [server.getsockname() for server in servers]
    with open(path, "w") as f:
        f.write("".join(f"tcp:{n[0]}:{n[1]}\n" if isinstance(n, tuple) else f"unix:{n}\n" for n in names))


def _room(listeners: int, cap: int) -> None:
    """Enough fds for every listener's cap (two per connection), when the hard limit allows: the default soft limit
    (often 1024) is less than a few slots' worth."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = listeners * (2 * cap + 1) + 32
    if soft != resource.RLIM_INFINITY and soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want if hard == resource.RLIM_INFINITY else min(want, hard), hard))


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m arl.broker.forward", description="Forward connections.")
    parser.add_argument("listen", nargs="+", help="tcp:HOST:PORT or unix:PATH to accept connections on")
    parser.add_argument("--to", required=True, help="tcp:HOST:PORT or unix:PATH each connection is forwarded to")
    parser.add_argument("--ready", help="a file created once every socket listens")
    parser.add_argument("--cap", type=int, default=MAX_CONNECTIONS, help="connections at once, per listening socket")
    if "--to" not in argv and len(argv) in (2, 3) and not any(a.startswith("-") for a in argv):
        argv = [argv[0], "--to", argv[1], *(["--ready", argv[2]] if len(argv) == 3 else [])]
    args = parser.parse_args(argv)
    _room(len(args.listen), args.cap)
    servers = [listen(spec) for spec in args.listen]
    target = _endpoint(args.to)
    if args.ready:
        ready(args.ready, servers)
    Forwarder(servers, target, args.cap).run()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
