"""Worker side of the transport: a per-process batching ZeroMQ sender to the hub, which
keeps every frame until the hub says it is spooled.

Every ZeroMQ send wakes the socket's I/O thread here and the hub's on the other side: about
20 µs of CPU per frame however small it is. So messages go into a ``MessageBuffer`` and are
sent as one frame:

- by the try's own thread when a try ends and nothing was sent for ``FLUSH_PERIOD`` (an
  isolated try, or the first after a pause, is on its way before its result is);
- otherwise by one flusher thread per process every ``FLUSH_PERIOD`` (a stream of short tries
  goes out a few hundred per frame; the start of a long try is seen well within a second);
- at exit (atexit, or ``close_all`` from executors whose workers leave with ``os._exit``).

Nothing wakes a thread per try. Waking the flusher when a try ended (the earlier design) cost
a futex wake and a GIL handover per try and, whenever the worker released the GIL in a system
call, a frame of one or two tries: 0.3-0.6 frames and ~100 µs of worker CPU per no-op task,
against ~10 µs for the task itself.

Delivery is confirmed. The socket is a DEALER and the hub's a ROUTER: once the hub's receive
loop has appended a frame to the durable spool it answers with the frame's sequence number
(cumulative: "all of yours up to N are spooled"). Until then the frame is kept here. When the
connection breaks (the writer process was killed and is being restarted) every frame not yet
confirmed is sent again, sealed anew, once the hub is back: frames that died unread in the old
writer's queues, however long they waited there, are not lost. (The previous design kept the
last 10 s of frames instead; a writer starved of CPU held older ones unread, and a kill lost
them.) A second copy of a worker frame changes nothing: its rows are keyed. Memory is bounded
by ``MAX_UNCONFIRMED_BYTES``; past it the oldest frames are no longer kept for resending
(counted, logged once), which loses them only if the writer also dies before reading them.
At close the sender waits for the confirmation of its last frames while the hub answers.
When the run closes first (a pool or Dask worker that outlives it), the hub asks every
connected sender for what it holds (``FLUSH_REQUEST``); the flusher thread answers within a
period, after the buffered messages, and the hub waits for those answers.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from collections import OrderedDict

import zmq
from zmq.utils.monitor import parse_monitor_message

from taskscope.monitoring.auth import CONFIRMATION, FLUSH_ANSWER, FLUSH_REQUEST, FrameSealer
from taskscope.monitoring.buffer import MessageBuffer
from taskscope.store.messages import encode_batch

logger = logging.getLogger(__name__)

# Time a closing socket may keep trying to deliver queued frames (ms).
LINGER_MS = 5000
FLUSH_PERIOD = 0.02
# Frames kept until confirmed, at most this many bytes (the oldest are let go first).
MAX_UNCONFIRMED_BYTES = 256 * 1024 * 1024
# At close: how long to wait for confirmations while the hub is connected but says nothing
# (a writer starved of CPU answers late, not never), and for a hub that went away (a writer
# being restarted) to come back.
CONFIRM_PATIENCE_S = 10.0
RECONNECT_PATIENCE_S = LINGER_MS / 1000


class BatchSender:
    """Buffers messages of this process and sends them to one hub as batches, keeping each
    until the hub confirms it is spooled."""

    def __init__(self, address: str, port: int, run_id: str, secret: str) -> None:
        self.address = address
        self.port = port
        self._sealer = FrameSealer(secret, run_id)  # the hub refuses unsealed frames
        self.pid = os.getpid()
        self.buffer = MessageBuffer()
        self._send_lock = threading.Lock()  # one thread at a time on the socket
        self._context = zmq.Context()
        self._socket = self._context.socket(zmq.DEALER)
        self._socket.setsockopt(zmq.LINGER, LINGER_MS)
        # Unbounded queue: monitoring never blocks a task and never drops a message when the
        # hub is briefly slow (messages are small, and the hub drains far faster than tasks).
        self._socket.setsockopt(zmq.SNDHWM, 0)
        self._monitor = self._socket.get_monitor_socket(
            zmq.EVENT_DISCONNECTED | zmq.EVENT_HANDSHAKE_SUCCEEDED
        )
        self._socket.connect(f"tcp://{address}:{port}")
        self._unconfirmed: OrderedDict[int, bytes] = OrderedDict()  # sequence -> payload
        self._unconfirmed_bytes = 0
        self.let_go = 0  # frames no longer kept for resending (MAX_UNCONFIRMED_BYTES)
        self.resent = 0  # frames sent again after a reconnection
        self._disconnected_at: float | None = None
        self._confirmed_at = time.monotonic()  # the last confirmation or connection event
        self._closed = False
        self._flush_requested = False  # the hub asked for everything held (the run closes)
        self._stop = threading.Event()
        self._last_send = 0.0  # time.monotonic() of the last flush
        self._thread = threading.Thread(target=self._flusher, name="taskscope-sender", daemon=True)
        self._thread.start()

    def send(self, message) -> None:  # the Sink protocol (sampler.Sink)
        self.buffer.add(message)

    def try_ended(self) -> None:  # the Sink protocol: a try's messages are in the buffer
        if time.monotonic() - self._last_send >= FLUSH_PERIOD:
            self.flush()

    @property
    def unconfirmed(self) -> int:
        """Frames sent and not yet confirmed as spooled by the hub."""
        return len(self._unconfirmed)

    def flush(self, copy: bool = False) -> None:
        with self._send_lock:
            self._last_send = time.monotonic()
            batch = self.buffer.take()
            if batch and not self._closed:
                self._send(encode_batch(batch), copy)

    def _send(self, payload: bytes, copy: bool) -> None:
        """Seal and send one payload, and keep it until confirmed (the send lock is held)."""
        sequence, frame = self._sealer.seal_numbered(payload)
        # (pyzmq's overloads want a literal for copy=)
        self._socket.send(frame, copy=copy)  # type: ignore[call-overload]
        self._unconfirmed[sequence] = payload
        self._unconfirmed_bytes += len(payload)
        while self._unconfirmed_bytes > MAX_UNCONFIRMED_BYTES and len(self._unconfirmed) > 1:
            _, oldest = self._unconfirmed.popitem(last=False)
            self._unconfirmed_bytes -= len(oldest)
            self.let_go += 1
            if self.let_go == 1:
                logger.warning(
                    "monitoring: the hub has not confirmed %d MB of frames; the oldest are no "
                    "longer kept for resending (lost only if the writer dies before reading them)",
                    MAX_UNCONFIRMED_BYTES // (1024 * 1024),
                )

    def _take_confirmations(self) -> None:
        """Let go of every frame the hub says it has spooled (the send lock is held)."""
        unconfirmed = self._unconfirmed
        while True:
            try:
                answer = self._socket.recv(zmq.NOBLOCK)
            except zmq.Again:
                return
            if answer == FLUSH_REQUEST:
                self._flush_requested = True
                continue
            if len(answer) != CONFIRMATION.size:
                continue  # only the hub answers on this connection; be strict anyway
            (up_to,) = CONFIRMATION.unpack(answer)
            self._confirmed_at = time.monotonic()
            while unconfirmed:
                sequence = next(iter(unconfirmed))
                if sequence > up_to:
                    break
                self._unconfirmed_bytes -= len(unconfirmed.pop(sequence))

    def _answer_flush_request(self) -> None:
        """The run is closing: send what is buffered, then the answer that says it was all
        (the send lock is held). The hub then waits for nothing more from this process, and
        no longer for a guessed quiet period after a last try's frame."""
        self._flush_requested = False
        self._last_send = time.monotonic()
        batch = self.buffer.take()
        if batch:
            self._send(encode_batch(batch), copy=True)
        self._send(FLUSH_ANSWER, copy=True)

    def _watch_connection(self) -> None:
        """Read confirmations and connection events; after a reconnection, send again every
        frame not confirmed (sealed anew: the hub refuses a sequence number it has seen)."""
        with self._send_lock:
            if not self._closed:
                self._take_confirmations()
                if self._flush_requested:
                    self._answer_flush_request()
        while True:
            try:
                event = parse_monitor_message(self._monitor.recv_multipart(zmq.NOBLOCK))
            except zmq.Again:
                return
            now = time.monotonic()
            if event["event"] == zmq.EVENT_DISCONNECTED:
                self._disconnected_at = now
            elif event["event"] == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                if self._disconnected_at is None:
                    continue  # the first connection: nothing to send again
                self._disconnected_at = None
                self._confirmed_at = now
                with self._send_lock:
                    if self._closed or not self._unconfirmed:
                        continue
                    resend = list(self._unconfirmed.values())
                    self._unconfirmed.clear()
                    self._unconfirmed_bytes = 0
                    for payload in resend:
                        self._send(payload, copy=True)
                    self.resent += len(resend)
                logger.info(
                    "monitoring: sent %d unconfirmed frames again after a reconnection",
                    len(resend),
                )

    def _await_confirmations(self) -> None:
        """At exit: wait until the hub has confirmed every frame, while it answers (or, if it
        is away, a writer being restarted, while it may still come back)."""
        try:
            while True:
                self._watch_connection()
                if not self._unconfirmed:
                    return
                now = time.monotonic()
                if self._disconnected_at is not None:
                    if now - self._disconnected_at >= RECONNECT_PATIENCE_S:
                        return  # no writer came back: the run is over
                elif now - self._confirmed_at >= CONFIRM_PATIENCE_S:
                    logger.warning(
                        "monitoring: the hub did not confirm the last %d frames within %.0f s",
                        len(self._unconfirmed),
                        CONFIRM_PATIENCE_S,
                    )
                    return
                zmq.select([self._socket, self._monitor], [], [], 0.05)
        except zmq.ZMQError as e:
            logger.debug("monitoring connection watch failed: %s", e)

    def _flusher(self) -> None:
        while not self._stop.wait(FLUSH_PERIOD):
            if os.getpid() != self.pid:
                return
            try:
                self._watch_connection()
            except zmq.ZMQError as e:
                logger.debug("monitoring connection watch failed: %s", e)
                return
            if not len(self.buffer):
                continue
            try:
                self.flush()
            except zmq.ZMQError as e:  # the context was closed at interpreter exit
                logger.debug("monitoring flush failed: %s", e)
                return

    def close(self) -> None:
        if self._closed:
            return
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(1.0)  # it uses the sockets: let it stop first
        # Copied, not zero-copy: at interpreter exit pyzmq's own atexit hook has already
        # stopped the thread that frees zero-copy frames, and a zero-copy send then raises
        # (the last tries' messages were lost, with a traceback on stderr).
        self.flush(copy=True)
        self._await_confirmations()
        with self._send_lock:
            self._closed = True
            self._socket.disable_monitor()
            self._monitor.close(linger=0)
            self._socket.close()
            self._context.term()


_senders: dict[tuple[str, int, str], BatchSender] = {}
_senders_lock = threading.Lock()
_senders_pid = os.getpid()


def sender_for(address: str, port: int, run_id: str, secret: str) -> BatchSender:
    """This process's sender to ``address:port`` for run ``run_id`` (made on first use,
    remade after fork)."""
    global _senders_pid
    key = (address, port, run_id)
    sender = _senders.get(key)
    if sender is not None and sender.pid == os.getpid():
        return sender
    with _senders_lock:
        if _senders_pid != os.getpid():
            # A forked child must not touch its parent's ZeroMQ context.
            _senders.clear()
            _senders_pid = os.getpid()
        sender = _senders.get(key)
        if sender is None:
            sender = _senders[key] = BatchSender(address, port, run_id, secret)
        return sender


@atexit.register
def close_all() -> None:
    """Send what is buffered and close every sender of this process (waits until the hub
    confirms it, see ``_await_confirmations``). Runs at exit; executors whose workers leave
    with os._exit call it."""
    if _senders_pid != os.getpid():
        return
    for sender in list(_senders.values()):
        try:
            sender.close()
        except zmq.ZMQError as e:
            logger.debug("monitoring sender close failed: %s", e)
    _senders.clear()
