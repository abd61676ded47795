"""The hub in the writer process: a receive loop that spools, and an apply loop that writes.

Receive loop (a thread): every frame on the hub's ZeroMQ ROUTER socket (batches from worker
processes) passes through ``_accept_frame`` and is appended, raw, to this process's stream in
the durable spool beside the database (``store/spool.py``); then each sender is told the
highest sequence number of its frames now spooled, and lets go of them (it keeps the rest to
send again if this process dies: ``monitoring/sender.py``). It does nothing else, so it keeps
up however slow the database is, and a frame it has taken is on disk, not in memory.

Apply loop (the calling thread): reads the run's streams from the spool (this process's, and
the workflow process's own, which that process appends directly), decodes them and writes
them through the one ``DatabaseWriter``, committing every ``commit_interval`` together with
how far each segment is applied (``store/replay.py``: exactly once, even across kills). It
also replays segments that earlier runs on this database left behind.

The workflow process says "close" on the control pipe after its last frame is spooled; then
the receive loop takes what is still arriving for a moment, the apply loop writes everything
spooled, and the run ends. EOF on that pipe means the workflow process died: the same, minus
the heartbeat (the run then reads as lost).

Faults: a lock held by another connection is waited out (retried every ``BUSY_RETRY_S``; the
``on_event`` callback is told once it starts and once it is over), never an error. A frame
that does not decode, or a message the database rejects, is counted
(``taskscope_run.messages_dropped``), logged and dropped. A failure of the database itself
(disk full, I/O error) or its file deleted or replaced stops the loop: it is kept in
``error`` for the hub to report; what was not written stays in the spool.
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
from pathlib import Path

import zmq

from taskscope.monitoring.auth import (
    CONFIRMATION,
    FLUSH_ANSWER,
    FLUSH_REQUEST,
    FrameGate,
    new_secret,
    tag_sequence,
)
from taskscope.monitoring.errors import MonitoringError
from taskscope.monitoring.priority import message_time
from taskscope.store.database import open_for_writing
from taskscope.store.errors import StoreError
from taskscope.store.messages import Message
from taskscope.store.readonly import is_busy
from taskscope.store.replay import SpoolApplier
from taskscope.store.spool import (
    TAGGED_ROLE,
    SpoolWriter,
    new_stream_id,
    note_delay,
    spool_dir,
)
from taskscope.store.writer import DatabaseWriter

logger = logging.getLogger(__name__)

POLL_MS = 50
# Refuse absurd frames before they are read into memory (a batch is a few KB).
MAX_FRAME_BYTES = 64 * 1024 * 1024
# How long close() keeps listening for stragglers once no frame arrives. There is no cap
# while genuine frames keep arriving: a writer behind on reading its socket (a restarted one
# taking the workers' resent frames, on a loaded machine) reads until its peers go quiet.
# (Workers that exit, HTEX's, wait for the hub to confirm their frames before they go.)
FINAL_QUIET_S = 0.1
# A worker still alive at close (a pool or Dask worker that outlives the run) holds its last
# try's messages for up to a flush period, and longer on a loaded machine: a quiet period
# alone lost them (30 ms did at load 5). So close asks every connected sender for what it
# holds and waits for each answer, giving up on a sender silent this long (stopped, or on a
# dead network), which it reports.
FLUSH_ANSWER_PATIENCE_S = 5.0
# Draining at most this many frames per pass keeps the loop responsive under a flood.
MAX_FRAMES_PER_PASS = 2000
# Frames queued per connection before ZeroMQ stops reading it (the sender's queue holds the
# rest): this process's memory stays bounded however far a peer runs ahead.
RCVHWM_FRAMES = 1000
# While another connection holds the database's lock, try again this often.
BUSY_RETRY_S = 0.5
BUSY_TIMEOUT_MS = 500
# How often the apply loop checks that the database file is still the one it opened.
FILE_CHECK_S = 1.0
# While closing, how often the apply loop says how much is left.
PROGRESS_EVERY_S = 0.5
# Seconds to sleep after applying each frame: a slow disk on purpose, for tests.
THROTTLE_ENV = "TASKSCOPE_WRITER_THROTTLE_S"
CLOSE_COMMAND = b"close"

EventCallback = Callable[..., None]


def resolve_bind_address(address: str) -> str:
    """An address ZeroMQ can bind: IP addresses and '*' pass, host names are resolved."""
    if address in ("*", "0.0.0.0"):
        return "*"
    try:
        return socket.gethostbyname(address)
    except OSError as e:
        raise MonitoringError(f"hub_address {address!r} does not resolve: {e}") from e


class HubService:
    """Owns the ROUTER socket, the run's spool stream and the database writer of one run."""

    def __init__(
        self,
        db_path: str,
        run_id: str,
        bind_address: str,
        port: int | None,
        heartbeat_interval: float,
        own_streams: tuple[str, ...] = (),
        commit_interval: float = 0.1,
        lag_observer: Callable[[float], None] | None = None,
        on_event: EventCallback | None = None,
        reconnect_grace_s: float = 0.0,
        secret: str = "",
    ) -> None:
        self.db_path = db_path
        self.run_id = run_id
        self.bind_address = bind_address
        self.requested_port = port or 0
        self.heartbeat_interval = heartbeat_interval
        self.commit_interval = commit_interval
        self.own_streams = own_streams
        # Told how old the newest message of each written batch is (the writer's priority).
        self.lag_observer = lag_observer
        # Told of delays and progress: on_event("delayed", reason=...), ("caught_up"),
        # ("progress", applied=..., left=...).
        self.on_event: EventCallback = on_event or (lambda event, **fields: None)
        self.reconnect_grace_s = reconnect_grace_s
        # Every frame must carry the run's MAC (monitoring/auth.py); checked before spooling.
        # open() seeds it with what earlier writer processes accepted (replays stay refused).
        self._secret = secret or new_secret()
        self._gate = FrameGate(self._secret, run_id)
        self._started = time.monotonic()
        self.closed_by_owner = False
        self.parent_gone = False
        self.port: int | None = None
        self.error: BaseException | None = None
        self.dropped = 0
        self.cpu_seconds = 0.0  # CPU this process used
        self.handshake_failures = 0
        self.frames_received = 0
        self.spool_dir: Path = spool_dir(db_path)
        self._throttle_s = float(os.environ.get(THROTTLE_ENV) or 0.0)
        self._stop = threading.Event()
        self._receiving_done = threading.Event()
        self._frame_spooled = threading.Event()
        self._receive_dropped = 0  # counted by the receive thread, written by the apply loop
        self._db_identity: tuple[int, int] | None = None
        self._writer: DatabaseWriter | None = None
        self._applier: SpoolApplier | None = None
        self._spool: SpoolWriter | None = None
        self._context: zmq.Context | None = None
        self._router: zmq.Socket | None = None
        self._monitor_socket: zmq.Socket | None = None
        self._receiver: threading.Thread | None = None
        self._peers: set[bytes] = set()  # connections that sent a genuine frame
        self._awaiting_answer: set[bytes] = set()  # asked to flush at close, not yet answered

    # -- setup ---------------------------------------------------------------------------

    def open(self) -> int:
        """Open the database and spool, bind the port; raises MonitoringError with the reason."""
        told = False
        while True:
            try:
                conn = open_for_writing(self.db_path)
                break
            except StoreError as e:
                # Another connection holds the lock (a database browser, a hand-run UPDATE):
                # wait it out, as the apply loop does, rather than fail the workflow's start.
                if e.__cause__ is None or not is_busy(e.__cause__):
                    raise MonitoringError(f"monitoring database: {e}") from e
                if not told:
                    told = True
                    self.on_event("delayed", reason="database is locked by another process")
                time.sleep(BUSY_RETRY_S)
        if told:
            self.on_event("caught_up")
        st = os.stat(self.db_path)
        self._db_identity = (st.st_dev, st.st_ino)
        self._writer = DatabaseWriter(conn)
        try:
            self._spool = SpoolWriter(self.spool_dir, new_stream_id(TAGGED_ROLE))
            self._applier = SpoolApplier(
                self._writer,
                self.spool_dir,
                (*self.own_streams, self._spool.stream),
                on_drop=self._drop,
                throttle_s=self._throttle_s,
            )
            self._gate = FrameGate(
                self._secret, self.run_id, accepted=self._applier.accepted_sequences()
            )
        except (OSError, sqlite3.Error) as e:
            self._writer.close(analyze=False)
            raise MonitoringError(f"cannot use the monitoring spool {self.spool_dir}: {e}") from e
        # Short: a lock is waited out by the loop, which can say so meanwhile.
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        self._context = zmq.Context()
        router = self._context.socket(zmq.ROUTER)
        router.setsockopt(zmq.LINGER, 0)
        router.setsockopt(zmq.MAXMSGSIZE, MAX_FRAME_BYTES)
        router.setsockopt(zmq.RCVHWM, RCVHWM_FRAMES)
        host = resolve_bind_address(self.bind_address)
        try:
            if self.requested_port:
                router.bind(f"tcp://{host}:{self.requested_port}")
                self.port = self.requested_port
            else:
                self.port = router.bind_to_random_port(f"tcp://{host}")
        except zmq.ZMQError as e:
            router.close()
            self._context.term()
            self._spool.close()
            self._applier.close()
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
        self._monitor_socket = router.get_monitor_socket(
            zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
        )
        self._router = router
        return self.port

    # -- running ---------------------------------------------------------------------------

    def stop(self) -> None:
        """End the run as if the owner had closed it (for in-process use and tests)."""
        self.closed_by_owner = True
        self._stop.set()

    def run(self, parent_pid: int | None = None, parent_pipe: int | None = None) -> None:
        """Receive and write until the owner says close on ``parent_pipe`` (or stop()), or
        the parent process dies (``parent_pipe`` reads EOF, or ``parent_pid`` is no longer
        our parent); then write everything spooled and close the database."""
        assert self._writer is not None and self._router is not None
        self._receiver = threading.Thread(
            target=self._receive_loop,
            args=(parent_pid, parent_pipe),
            name="taskscope-hub-receive",
            daemon=True,
        )
        self._receiver.start()
        try:
            self._apply_loop()
        except BaseException as e:
            logger.exception("monitoring writer failed")
            self.error = e
        finally:
            self._shutdown()
            usage = resource.getrusage(resource.RUSAGE_SELF)
            self.cpu_seconds = usage.ru_utime + usage.ru_stime

    # -- the receive loop ----------------------------------------------------------------

    def _receive_loop(self, parent_pid: int | None, parent_pipe: int | None) -> None:
        try:
            poller = zmq.Poller()
            poller.register(self._router, zmq.POLLIN)
            poller.register(self._monitor_socket, zmq.POLLIN)
            if parent_pipe is not None:
                poller.register(parent_pipe, zmq.POLLIN)
            control = b""
            while not self._stop.is_set():
                events = dict(poller.poll(POLL_MS))
                if self._monitor_socket in events:
                    self._count_handshake_failures()
                if parent_pipe is not None and parent_pipe in events:
                    data = os.read(parent_pipe, 4096)
                    if not data:
                        logger.warning("workflow process died; writing what it sent")
                        self.parent_gone = True
                        break
                    control += data
                    if CLOSE_COMMAND + b"\n" in control:
                        self.closed_by_owner = True
                        break
                self._drain()
                if parent_pid is not None and os.getppid() != parent_pid:
                    logger.warning("workflow process died; writing what it sent")
                    self.parent_gone = True
                    break
            self._final_drain(poller)
        except BaseException as e:
            logger.exception("monitoring receiver failed")
            self.error = e
        finally:
            if self._spool is not None:
                self._spool.close()  # the stream is complete: the apply loop may finish it
            self._receiving_done.set()
            self._frame_spooled.set()

    def _drain(self) -> int:
        router = self._router
        assert router is not None  # open() made it; only _shutdown() clears it, after the loop
        count = 0
        spooled: dict[bytes, int] = {}  # connection -> highest sequence spooled in this pass
        for _ in range(MAX_FRAMES_PER_PASS):
            try:
                parts = router.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                break
            if len(parts) != 2:  # a sender's message is one frame behind its connection id
                self._gate.refuse(parts[-1], "not one frame")
                continue
            connection = parts[0].bytes
            sequence = self._accept_frame(parts[1], connection)
            if sequence is not None:
                count += 1
                spooled[connection] = sequence
        refused = self._gate.take_refused()  # counted, logged by the gate (once per peer)
        if refused:
            self._receive_dropped += refused
        if count:
            self._frame_spooled.set()
            self._confirm(router, spooled)
            self._peers.update(spooled)
        return count

    @staticmethod
    def _confirm(router: zmq.Socket, spooled: dict[bytes, int]) -> None:
        """Tell each sender how far its frames are spooled (it keeps the rest to resend)."""
        for connection, sequence in spooled.items():
            try:
                router.send_multipart([connection, CONFIRMATION.pack(sequence)], zmq.NOBLOCK)
            except zmq.ZMQError:  # gone, or not reading: it sends again what it still holds
                pass

    def _accept_frame(self, frame: zmq.Frame, connection: bytes) -> int | None:
        """Every frame received on the hub port passes here once, before it is spooled:
        only a genuine frame of this run (its MAC checked, not a replay) is spooled, without
        its seal but behind its sender id and sequence number (the applier keeps the highest
        per sender, so replays stay refused after a restart). Decoding happens in the apply
        loop, so a frame costs the receiver one hash and one append. Returns the spooled
        frame's sequence number, None for a refused frame."""
        opened = self._gate.open_tagged(frame)
        if opened is None:
            return None
        tag, payload = opened
        if self._awaiting_answer and payload == FLUSH_ANSWER:
            self._awaiting_answer.discard(connection)
        assert self._spool is not None  # made by open(), before any frame can arrive
        self._spool.append(payload, tag=tag)
        self.frames_received += 1
        return tag_sequence(tag)

    def _final_drain(self, poller: zmq.Poller) -> None:
        """Take the frames still arriving: a worker's last batch may trail the owner's close."""
        # A restarted writer also waits for the workers to reconnect (ZeroMQ retries every
        # 100 ms) and send what they queued while no writer listened.
        # Only genuine frames count as arriving (_drain counts what it spooled), so a flood
        # of junk cannot hold the close open.
        grace_end = self._started + self.reconnect_grace_s
        self._drain()
        self._ask_peers_to_flush()
        asked_at = quiet_since = time.monotonic()
        while True:
            now = time.monotonic()
            if self._drain():
                quiet_since = now
            elif self._awaiting_answer and now - asked_at < FLUSH_ANSWER_PATIENCE_S:
                poller.poll(5)
            elif now - quiet_since >= FINAL_QUIET_S and now >= grace_end:
                break
            else:
                poller.poll(5)
        if self._awaiting_answer:
            logger.warning(
                "monitoring: %d worker processes did not answer within %.0f s at close "
                "(stopped, or unreachable); what they had not sent yet is not in the database",
                len(self._awaiting_answer),
                FLUSH_ANSWER_PATIENCE_S,
            )

    def _ask_peers_to_flush(self) -> None:
        """Ask every sender still connected for what it holds; a gone one (its connection
        closed: a worker that exited) cannot be asked, and is not waited for."""
        router = self._router
        assert router is not None
        router.setsockopt(zmq.ROUTER_MANDATORY, 1)  # a send to a gone peer fails, not vanishes
        for peer in self._peers:
            try:
                router.send_multipart([peer, FLUSH_REQUEST], zmq.NOBLOCK)
            except zmq.ZMQError:  # gone (EHOSTUNREACH), or not reading (EAGAIN)
                continue
            self._awaiting_answer.add(peer)

    def _count_handshake_failures(self) -> None:
        assert self._monitor_socket is not None  # made by open() with the ROUTER socket
        while True:
            try:
                self._monitor_socket.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            self.handshake_failures += 1
            self._receive_dropped += 1
            # Every failure is counted; a flood of junk connections is not a flood of log lines.
            if self.handshake_failures == 1 or self.handshake_failures % 1000 == 0:
                logger.warning(
                    "monitoring message dropped: a connection to the hub port failed the "
                    "ZeroMQ handshake (junk bytes); %d so far",
                    self.handshake_failures,
                )

    # -- the apply loop ------------------------------------------------------------------

    def _apply_loop(self) -> None:
        writer, applier = self._writer, self._applier
        assert writer is not None and applier is not None
        last_commit = last_beat = last_check = last_progress = time.monotonic()
        moved_drops = 0
        delayed = False
        while True:
            if self.error is not None:  # the receive loop failed
                raise self.error
            receiving_done = self._receiving_done.is_set()
            try:
                staged = applier.apply_pass()
                now = time.monotonic()
                if staged and self.lag_observer is not None:
                    self._observe_lag(staged)
                if self._receive_dropped != moved_drops:
                    count = self._receive_dropped - moved_drops
                    moved_drops += count
                    self.dropped += count
                    writer.note_dropped(self.run_id, count)
                if now - last_beat >= self.heartbeat_interval and not self.parent_gone:
                    writer.heartbeat(self.run_id)
                    last_beat = now
                if now - last_commit >= self.commit_interval or (receiving_done and not staged):
                    applier.commit()
                    last_commit = now
            except sqlite3.OperationalError as e:
                if not is_busy(e):
                    raise
                # BEGIN IMMEDIATE failed, so nothing was staged: what this pass read is read
                # again (the segments' offsets only move once their messages are staged).
                if not delayed:
                    delayed = True
                    reason = "database is locked by another process"
                    logger.warning("recording is delayed: %s", reason)
                    note_delay(self.spool_dir, reason)
                    self.on_event("delayed", reason=reason)
                if receiving_done:
                    self.on_event(
                        "progress", applied=applier.messages_applied, left=applier.pending()[1]
                    )
                time.sleep(BUSY_RETRY_S)
                continue
            # Caught up: the backlog the lock held back is written (a frame or two may be
            # arriving meanwhile).
            if delayed and applier.pending()[0] <= 2:
                delayed = False
                logger.warning("recording caught up")
                note_delay(self.spool_dir, None)
                self.on_event("caught_up")
            if now - last_check >= FILE_CHECK_S:
                self._check_database_file()
                last_check = now
            if receiving_done and now - last_progress >= PROGRESS_EVERY_S:
                last_progress = now
                self.on_event(
                    "progress", applied=applier.messages_applied, left=applier.pending()[1]
                )
            if receiving_done and not staged and not applier.has_work():
                return
            if not staged:
                self._frame_spooled.wait(POLL_MS / 1000)
                self._frame_spooled.clear()

    def _check_database_file(self) -> None:
        """The database must still be the file we opened: writing into a deleted (or
        replaced) file would lose every row without a word."""
        spool = self.spool_dir
        try:
            st = os.stat(self.db_path)
        except FileNotFoundError:
            raise MonitoringError(
                f"{self.db_path} was deleted during the run; what was not written yet stays "
                f"in {spool} (`taskscope recover {self.db_path}` writes it into a new database)"
            ) from None
        if (st.st_dev, st.st_ino) != self._db_identity:
            raise MonitoringError(
                f"{self.db_path} was replaced by another file during the run; what was not "
                f"written yet stays in {spool}"
            )

    def _observe_lag(self, batch: list[Message]) -> None:
        if self.lag_observer is None:
            return
        for message in reversed(batch[-8:]):
            when = message_time(message)
            if when is not None:
                self.lag_observer(time.time() - when)
                return

    def _drop(self, count: int, why: str) -> None:
        self.dropped += count
        logger.warning("monitoring message dropped: %s", why)
        if self._writer is not None:
            self._writer.note_dropped(self.run_id, count)

    def _shutdown(self) -> None:
        self._stop.set()
        if self._receiver is not None:
            self._receiver.join()
        if self._router is not None:
            self._router.disable_monitor()
            if self._monitor_socket is not None:
                self._monitor_socket.close(linger=0)
            self._router.close(linger=0)
            self._router = None
        if self._context is not None:
            self._context.term()
            self._context = None
        if self._writer is not None:
            writer, self._writer = self._writer, None
            try:
                if self.error is None and self._applier is not None:
                    self._applier.commit()
                    writer.close(analyze=True)
                else:
                    writer.rollback()
                    writer.close(analyze=False)
            except Exception as e:
                if self.error is None:
                    self.error = e
                logger.exception("closing the monitoring database failed")
            finally:
                if self._applier is not None:
                    self._applier.close()
