"""The hub's receive-and-write loop: it owns the database, in the writer process.

Every message arrives on one ZeroMQ PULL socket: batches from worker processes, and from the
workflow process (the kernel's messages, and tries run by its threads). Every ~50 ms the loop
drains the socket, stages the messages in the writer's open transaction, and commits at least
every ``commit_interval`` seconds, so a reader sees changes well within a second and a killed
process loses at most the last fraction of a second.

The loop ends when the workflow process sends the close frame (after its last batch, on the
same connection, so nothing it sent is left behind) or when that process dies.

A frame that does not decode into messages is counted (``taskscope_run.messages_dropped``),
logged and dropped; so is a single message the database rejects. Only a failure of the
database itself (disk full, I/O error) stops the loop: it is kept in ``error`` for the hub to
report to the user.
"""

from __future__ import annotations

import logging
import os
import resource
import socket
import sqlite3
import threading
import time
from collections.abc import Callable

import msgspec
import zmq

from taskscope.monitoring.auth import FrameGate, new_secret
from taskscope.monitoring.errors import MonitoringError
from taskscope.monitoring.priority import message_time
from taskscope.store.database import open_for_writing
from taskscope.store.errors import StoreError
from taskscope.store.messages import Message, decode_batch
from taskscope.store.writer import DatabaseWriter

logger = logging.getLogger(__name__)

POLL_MS = 50
# Refuse absurd frames before they are read into memory (a batch is a few KB).
MAX_FRAME_BYTES = 64 * 1024 * 1024
# How long close() keeps listening for stragglers once no frame arrives.
FINAL_QUIET_S = 0.03
FINAL_MAX_S = 0.3
# Draining at most this many frames per pass keeps commits regular under a flood.
MAX_FRAMES_PER_PASS = 2000
# The workflow process's last frame: this prefix and the hub's token. A msgpack batch is an
# array, which never starts with a zero byte, so no batch can be mistaken for it.
CLOSE_PREFIX = b"\x00close "


def close_frame(token: str) -> bytes:
    return CLOSE_PREFIX + token.encode()


def resolve_bind_address(address: str) -> str:
    """An address ZeroMQ can bind: IP addresses and '*' pass, host names are resolved."""
    if address in ("*", "0.0.0.0"):
        return "*"
    try:
        return socket.gethostbyname(address)
    except OSError as e:
        raise MonitoringError(f"hub_address {address!r} does not resolve: {e}") from e


class HubService:
    """Owns the PULL socket and the database writer of one run."""

    def __init__(
        self,
        db_path: str,
        run_id: str,
        bind_address: str,
        port: int | None,
        heartbeat_interval: float,
        token: str = "",
        commit_interval: float = 0.1,
        secret: str = "",
        lag_observer: Callable[[float], None] | None = None,
    ) -> None:
        self.db_path = db_path
        self.run_id = run_id
        self.bind_address = bind_address
        self.requested_port = port or 0
        self.heartbeat_interval = heartbeat_interval
        self.commit_interval = commit_interval
        # Told how old the newest message of each written batch is (the writer's priority).
        self.lag_observer = lag_observer
        self._close_frame = close_frame(token)
        # Every frame must carry the run's MAC (monitoring/auth.py); checked before decoding.
        self._gate = FrameGate(secret or new_secret(), run_id)
        self.closed_by_owner = False
        self.port: int | None = None
        self.error: BaseException | None = None
        self.dropped = 0
        self.cpu_seconds = 0.0  # CPU the loop used (its thread's, or its process's)
        self.handshake_failures = 0
        self._stop = threading.Event()
        self._writer: DatabaseWriter | None = None
        self._context: zmq.Context | None = None
        self._pull: zmq.Socket | None = None
        self._monitor_socket: zmq.Socket | None = None

    # -- setup ---------------------------------------------------------------------------

    def open(self) -> int:
        """Open the database and bind the port; raises MonitoringError with the reason."""
        try:
            conn = open_for_writing(self.db_path)
        except StoreError as e:
            raise MonitoringError(f"monitoring database: {e}") from e
        self._writer = DatabaseWriter(conn)
        self._context = zmq.Context()
        pull = self._context.socket(zmq.PULL)
        pull.setsockopt(zmq.LINGER, 0)
        pull.setsockopt(zmq.MAXMSGSIZE, MAX_FRAME_BYTES)
        pull.setsockopt(zmq.RCVHWM, 0)
        host = resolve_bind_address(self.bind_address)
        try:
            if self.requested_port:
                pull.bind(f"tcp://{host}:{self.requested_port}")
                self.port = self.requested_port
            else:
                self.port = pull.bind_to_random_port(f"tcp://{host}")
        except zmq.ZMQError as e:
            pull.close()
            self._context.term()
            self._writer.close(analyze=False)
            if e.errno == zmq.EADDRINUSE:
                raise MonitoringError(
                    f"hub_port {self.requested_port} on {self.bind_address} is already in use "
                    "(another workflow or program holds it); choose another hub_port or "
                    "hub_port=None for a free one"
                ) from e
            raise MonitoringError(
                f"cannot listen on {self.bind_address}:{self.requested_port}: {e}"
            ) from e
        # Connections that fail the ZeroMQ handshake (raw junk on the port) never produce a
        # frame; the socket monitor lets us count them anyway.
        self._monitor_socket = pull.get_monitor_socket(
            zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
        )
        self._pull = pull
        return self.port

    # -- the loop ------------------------------------------------------------------------

    def stop(self) -> None:
        self._stop.set()

    def run(self, parent_pid: int | None = None, parent_pipe: int | None = None) -> None:
        """Receive and write until the close frame, stop(), or the parent process's death
        (``parent_pipe`` reads EOF, or ``parent_pid`` is no longer our parent)."""
        assert self._writer is not None and self._pull is not None
        poller = zmq.Poller()
        poller.register(self._pull, zmq.POLLIN)
        poller.register(self._monitor_socket, zmq.POLLIN)
        if parent_pipe is not None:
            poller.register(parent_pipe, zmq.POLLIN)
        last_commit = last_beat = time.monotonic()
        try:
            while not self._stop.is_set():
                events = dict(poller.poll(POLL_MS))
                if self._monitor_socket in events:
                    self._count_handshake_failures()
                # The parent writes nothing after the configuration: readable means EOF.
                if parent_pipe in events and not os.read(parent_pipe, 4096):
                    logger.warning("workflow process died; closing the monitoring database")
                    break
                batch = self._drain()
                if batch:
                    self._write(batch)
                    if self.lag_observer is not None:
                        self._observe_lag(batch)
                now = time.monotonic()
                if now - last_beat >= self.heartbeat_interval:
                    self._writer.heartbeat(self.run_id)
                    last_beat = now
                if now - last_commit >= self.commit_interval and self._writer.has_pending():
                    self._writer.commit()
                    last_commit = now
                if parent_pid is not None and os.getppid() != parent_pid:
                    logger.warning("workflow process died; closing the monitoring database")
                    break
            self._final_drain(poller)
        except BaseException as e:
            logger.exception("monitoring writer failed")
            self.error = e
        finally:
            self._shutdown()
            usage = resource.getrusage(getattr(resource, "RUSAGE_THREAD", resource.RUSAGE_SELF))
            self.cpu_seconds = usage.ru_utime + usage.ru_stime

    def _drain(self) -> list[Message]:
        batch: list[Message] = []
        pull = self._pull
        for _ in range(MAX_FRAMES_PER_PASS):
            try:
                frame = pull.recv(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                break
            data = self._gate.open(frame)
            if data is None:
                continue
            try:
                batch.extend(decode_batch(data))
            except (msgspec.DecodeError, msgspec.ValidationError) as e:
                if data[: len(CLOSE_PREFIX)] == CLOSE_PREFIX and bytes(data) == self._close_frame:
                    self.closed_by_owner = True
                    self._stop.set()
                    break
                self._drop(1, f"undecodable frame of {len(data)} bytes: {e}")
        refused = self._gate.take_refused()  # counted, logged by the gate (once per peer)
        if refused:
            self.dropped += refused
            self._writer.note_dropped(self.run_id, refused)
        return batch

    def _observe_lag(self, batch: list[Message]) -> None:
        for message in reversed(batch[-8:]):
            when = message_time(message)
            if when is not None:
                self.lag_observer(time.time() - when)
                return

    def _final_drain(self, poller: zmq.Poller) -> None:
        deadline = time.monotonic() + FINAL_MAX_S
        quiet_since = time.monotonic()
        while True:
            batch = self._drain()
            now = time.monotonic()
            if batch:
                self._write(batch)
                quiet_since = now
            elif now - quiet_since >= FINAL_QUIET_S or now >= deadline:
                break
            else:
                poller.poll(5)
        self._writer.commit()

    def _write(self, batch: list[Message]) -> None:
        writer = self._writer
        try:
            writer.begin()
            writer.conn.execute("SAVEPOINT batch")
            writer.write(batch)
            writer.conn.execute("RELEASE batch")
        except sqlite3.OperationalError:
            raise  # the database itself failed: stop and report
        except Exception as e:  # noqa: BLE001 - isolate the message the database rejects
            logger.warning("a batch was rejected (%s); writing its messages one by one", e)
            writer.conn.execute("ROLLBACK TO batch")
            writer.conn.execute("RELEASE batch")
            for message in batch:
                try:
                    writer.conn.execute("SAVEPOINT one")
                    writer.write([message])
                    writer.conn.execute("RELEASE one")
                except sqlite3.OperationalError:
                    raise
                except Exception as e1:  # noqa: BLE001
                    writer.conn.execute("ROLLBACK TO one")
                    writer.conn.execute("RELEASE one")
                    self._drop(1, f"message rejected by the database: {e1}: {message!r:.200}")

    def _drop(self, count: int, why: str) -> None:
        self.dropped += count
        logger.warning("monitoring message dropped: %s", why)
        self._writer.note_dropped(self.run_id, count)

    def _count_handshake_failures(self) -> None:
        while True:
            try:
                self._monitor_socket.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            self.handshake_failures += 1
            self._drop(1, "a connection to the hub port failed the ZeroMQ handshake (junk bytes)")

    def _shutdown(self) -> None:
        if self._pull is not None:
            self._pull.disable_monitor()
            self._monitor_socket.close(linger=0)
            self._pull.close(linger=0)
            self._pull = None
        if self._context is not None:
            self._context.term()
            self._context = None
        if self._writer is not None:
            writer, self._writer = self._writer, None
            try:
                if self.error is None:
                    writer.close(analyze=True)
                else:
                    writer.rollback()
                    writer.close(analyze=False)
            except Exception as e:
                if self.error is None:
                    self.error = e
                logger.exception("closing the monitoring database failed")
