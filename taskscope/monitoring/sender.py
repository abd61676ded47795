"""Worker side of the transport: a per-process batching ZeroMQ PUSH sender to the hub.

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
against ~10 µs for the task itself. ``FLUSH_PERIOD`` stays below the writer's final quiet
wait (``receiver.FINAL_QUIET_S``) so the last tries of a run reach the database at close.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from collections import deque

import zmq
from zmq.utils.monitor import parse_monitor_message

from taskscope.monitoring.auth import FrameSealer
from taskscope.monitoring.buffer import MessageBuffer
from taskscope.store.messages import encode_batch

logger = logging.getLogger(__name__)

# Time a closing socket may keep trying to deliver queued frames (ms).
LINGER_MS = 5000
FLUSH_PERIOD = 0.02
# Frames sent this recently before the connection to the hub broke are sent again once it is
# back (a restarted writer): they may have died unread in the old writer's socket buffers
# (10 s: a writer starved of CPU on a loaded machine may hold seconds of them). Sending a
# worker frame twice is harmless: its rows are keyed, so the second copy changes nothing.
RESEND_WINDOW_S = 10.0


class BatchSender:
    """Buffers messages of this process and pushes them to one hub as batches."""

    def __init__(self, address: str, port: int, run_id: str, secret: str) -> None:
        self.address = address
        self.port = port
        self._sealer = FrameSealer(secret, run_id)  # the hub refuses unsealed frames
        self.pid = os.getpid()
        self.buffer = MessageBuffer()
        self._send_lock = threading.Lock()  # one frame at a time on the socket
        self._context = zmq.Context()
        self._socket = self._context.socket(zmq.PUSH)
        self._socket.setsockopt(zmq.LINGER, LINGER_MS)
        # Unbounded queue: monitoring never blocks a task and never drops a message when the
        # hub is briefly slow (messages are small, and the hub drains far faster than tasks).
        self._socket.setsockopt(zmq.SNDHWM, 0)
        self._monitor = self._socket.get_monitor_socket(
            zmq.EVENT_DISCONNECTED | zmq.EVENT_HANDSHAKE_SUCCEEDED
        )
        self._socket.connect(f"tcp://{address}:{port}")
        self._recent: deque[tuple[float, bytes]] = deque()  # (sent at, payload)
        self._resend: list[bytes] = []
        self._disconnected_at: float | None = None
        self._closed = False
        self._stop = threading.Event()
        self._last_send = 0.0  # time.monotonic() of the last flush
        self._thread = threading.Thread(target=self._flusher, name="taskscope-sender", daemon=True)
        self._thread.start()

    def send(self, message) -> None:  # the Sink protocol (sampler.Sink)
        self.buffer.add(message)

    def try_ended(self) -> None:  # the Sink protocol: a try's messages are in the buffer
        if time.monotonic() - self._last_send >= FLUSH_PERIOD:
            self.flush()

    def flush(self, copy: bool = False) -> None:
        with self._send_lock:
            self._last_send = time.monotonic()
            batch = self.buffer.take()
            if batch and not self._closed:
                payload = encode_batch(batch)
                # (pyzmq's overloads want a literal for copy=)
                self._socket.send(self._sealer.seal(payload), copy=copy)  # type: ignore[call-overload]
                now = self._last_send
                recent = self._recent
                recent.append((now, payload))
                while recent[0][0] < now - RESEND_WINDOW_S:
                    recent.popleft()

    def _watch_connection(self) -> None:
        """After a reconnection, send again what may have been lost with the old peer
        (sealed anew: the hub refuses a sequence number it has seen)."""
        while True:
            try:
                event = parse_monitor_message(self._monitor.recv_multipart(zmq.NOBLOCK))
            except zmq.Again:
                return
            if event["event"] == zmq.EVENT_DISCONNECTED:
                self._disconnected_at = time.monotonic()
                cutoff = self._disconnected_at - RESEND_WINDOW_S
                with self._send_lock:
                    self._resend = [p for t, p in self._recent if t >= cutoff]
            elif event["event"] == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                self._disconnected_at = None
                if not self._resend:
                    continue
                with self._send_lock:
                    resend, self._resend = self._resend, []
                    if not self._closed:
                        for payload in resend:
                            self._socket.send(self._sealer.seal(payload))
                logger.info(
                    "monitoring: sent %d recent frames again after a reconnection", len(resend)
                )

    def _await_reconnection(self) -> None:
        """At exit, while the hub is away (a writer being restarted) with frames to send
        again: wait for it as long as the socket's linger would, then send them."""
        try:
            self._watch_connection()
            while self._resend and self._disconnected_at is not None:
                if time.monotonic() - self._disconnected_at >= LINGER_MS / 1000:
                    return  # no writer came back: the run is over
                if self._monitor.poll(50):
                    self._watch_connection()
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
            self._thread.join(1.0)  # it uses the monitor socket: let it stop first
        self._await_reconnection()
        # Copied, not zero-copy: at interpreter exit pyzmq's own atexit hook has already
        # stopped the thread that frees zero-copy frames, and a zero-copy send then raises
        # (the last tries' messages were lost, with a traceback on stderr).
        self.flush(copy=True)
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
    """Send what is buffered and close every sender of this process (waits for delivery up
    to LINGER_MS). Runs at exit; executors whose workers leave with os._exit call it."""
    if _senders_pid != os.getpid():
        return
    for sender in list(_senders.values()):
        try:
            sender.close()
        except zmq.ZMQError as e:
            logger.debug("monitoring sender close failed: %s", e)
    _senders.clear()
