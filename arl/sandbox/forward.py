"""A tiny byte forwarder between TCP and unix sockets: how the host service reaches the sandbox.

The host forwards a unix socket in .arl/ to the service on 127.0.0.1; the container, even with `--network none`,
forwards 127.0.0.1:PORT to that socket (mounted in). No port is opened on any network interface.

    python -m arl.sandbox.forward LISTEN TARGET [READY_FILE]   (each tcp:HOST:PORT or unix:PATH)

READY_FILE is created once the listening socket is bound, so a caller can wait for it."""

from __future__ import annotations

import os
import socket
import sys
import threading


def _endpoint(spec: str) -> tuple[int, object]:
    kind, _, rest = spec.partition(":")
    if kind == "unix":
        return socket.AF_UNIX, rest
    if kind == "tcp":
        host, _, port = rest.rpartition(":")
        return socket.AF_INET, (host or "127.0.0.1", int(port))
    raise SystemExit(f"arl.sandbox.forward: bad endpoint {spec!r} (tcp:HOST:PORT or unix:PATH)")


def _pump(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def _serve(client: socket.socket, target: tuple[int, object]) -> None:
    try:
        upstream = socket.socket(target[0], socket.SOCK_STREAM)
        upstream.connect(target[1])  # type: ignore[arg-type]
    except OSError:
        client.close()
        return
    threading.Thread(target=_pump, args=(client, upstream), daemon=True).start()
    _pump(upstream, client)
    client.close()
    upstream.close()


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
    server.listen(64)
    return server


def main(argv: list[str]) -> int:
    if len(argv) not in (2, 3):
        print(__doc__, file=sys.stderr)
        return 2
    server = listen(argv[0])
    target = _endpoint(argv[1])
    if len(argv) == 3:
        open(argv[2], "w").close()
    while True:
        client, _ = server.accept()
        threading.Thread(target=_serve, args=(client, target), daemon=True).start()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
