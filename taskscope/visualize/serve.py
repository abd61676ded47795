"""Running the dashboard under uvicorn so that no client and no request can keep it up.

Two things plain `uvicorn.run` does not give:

- SIGTERM/SIGINT stop the server within STOP_DEADLINE_S whatever its requests are doing:
  uvicorn's graceful shutdown waits for open connections and for request threads, and a
  request thread that waits on the filesystem or on SQLite cannot be cancelled. The dashboard
  only reads, so nothing is lost by ending the process once the deadline passes.
- An oversized request head is answered (414 for a request line, 431 for headers) and the
  connection is closed after the client's bytes are read, not reset with the bytes unread.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
from types import FrameType
from typing import Any

import h11
import uvicorn
from starlette.types import ASGIApp
from uvicorn.protocols.http.h11_impl import H11Protocol

STOP_DEADLINE_S = 1.5
# The longest request head accepted (request line plus headers); h11's default is 16 KiB.
MAX_HEAD_BYTES = 64 * 1024
LINGER_S = 1.0


class BoundedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, answering an oversized request head with 414 or 431."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._too_long: int | None = None
        self._lingering = False
        original = self.conn.next_event

        def next_event() -> Any:  # note why h11 refused the request, for send_400_response
            try:
                return original()
            except h11.RemoteProtocolError as exc:
                if exc.error_status_hint == 431:
                    self._too_long = 414 if self._request_line_unfinished() else 431
                raise

        self.conn.next_event = next_event  # type: ignore[method-assign]

    def _request_line_unfinished(self) -> bool:
        try:
            head = bytes(self.conn._receive_buffer)
        except (AttributeError, TypeError):  # h11's internals changed: say 431
            return False
        return b"\n" not in head

    def data_received(self, data: bytes) -> None:
        if self._lingering:  # the answer is sent; read and drop the rest of the request
            return
        super().data_received(data)

    def send_400_response(self, msg: str) -> None:
        if self._too_long is None:
            super().send_400_response(msg)
            return
        status = self._too_long
        reason = {414: b"URI Too Long", 431: b"Request Header Fields Too Large"}[status]
        text = {414: "The request line is too long.", 431: "The request headers are too long."}[
            status
        ]
        body = f"{status} {reason.decode()}: {text}\n".encode()
        head = (
            f"HTTP/1.1 {status} ".encode() + reason + b"\r\ncontent-type: text/plain; "
            b"charset=utf-8\r\nconnection: close\r\ncontent-length: "
            + str(len(body)).encode()
            + b"\r\n\r\n"
        )
        self.transport.write(head + body)
        # Closing now, with the client's bytes unread, would send a TCP reset and the client
        # would see "connection reset" instead of the answer: shut the sending side, read and
        # drop what is still coming, then close.
        self._lingering = True
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.loop.call_later(LINGER_S, self.transport.close)

    def eof_received(self) -> None:
        if self._lingering:
            self.transport.close()
            return
        super().eof_received()


class DashboardServer(uvicorn.Server):
    """A uvicorn server that a signal always stops within STOP_DEADLINE_S."""

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        timer = threading.Timer(STOP_DEADLINE_S, _end_process, args=(sig,))
        timer.daemon = True
        timer.start()


def _end_process(sig: int) -> None:
    """The graceful shutdown took too long: end the process the way the signal would have."""
    signal.signal(sig, signal.SIG_DFL)
    os.kill(os.getpid(), sig)


def serve(
    app: ASGIApp,
    host: str,
    port: int,
    log_level: str = "warning",
    sock: socket.socket | None = None,
) -> None:
    """Serve `app`; on `sock` when given (already bound and listening, see visualize/listen)."""
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        http=BoundedH11Protocol,
        h11_max_incomplete_event_size=MAX_HEAD_BYTES,
        timeout_graceful_shutdown=1,
    )
    DashboardServer(config).run(sockets=[sock] if sock is not None else None)
