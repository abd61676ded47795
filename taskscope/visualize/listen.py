"""The dashboard's listening socket, bound before anything is printed.

Binding first means a port that is taken fails with a message saying how to pick another,
instead of printing an address where some other program answers; and ``--port 0`` can print
the port the system chose.
"""

from __future__ import annotations

import errno
import socket


class ListenError(Exception):
    """The address cannot be listened on; the message says why and what to do."""


def bind_listener(host: str, port: int) -> socket.socket:
    """A listening TCP socket on host:port (port 0: a free port the system picks)."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as exc:
        raise ListenError(f"cannot listen on {host!r}: {exc.strerror or exc}") from exc
    sock = socket.socket(family, kind, proto)
    try:
        # Lets a restarted dashboard reuse a port still in TIME_WAIT; it does not let two
        # servers listen on one port (Linux refuses that without SO_REUSEPORT).
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise ListenError(
                f"port {port} on {host} is already in use by another program; pick another "
                "with --port N, or --port 0 for any free port"
            ) from exc
        if exc.errno == errno.EACCES:
            raise ListenError(
                f"not allowed to listen on port {port} of {host} (ports below 1024 need "
                "privileges); pick another with --port N, or --port 0 for any free port"
            ) from exc
        raise ListenError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    sock.set_inheritable(True)
    return sock


def bound_port(sock: socket.socket) -> int:
    port: int = sock.getsockname()[1]
    return port
