"""Worker side of the transport: a per-process batching ZeroMQ PUSH sender to the hub.

Every ZeroMQ send wakes the socket's I/O thread here and the hub's on the other side: about
20 µs of CPU per frame however small it is. So messages go into a ``MessageBuffer`` and one
flusher thread per process sends them as one frame per flush:

- when a try ends, the wrapper calls ``kick()``: the flusher sends as soon as it gets the GIL,
  which under a stream of short tasks is every few milliseconds (so frames hold many tries),
  and at once when the worker goes idle (blocked reading its next task);
- every ``FLUSH_PERIOD`` otherwise, so the start of a long try is seen well within a second;
- at exit (atexit), for whatever is left.
"""

from __future__ import annotations

import atexit
import logging
import os
import queue
import threading

import zmq

from taskscope.monitoring.buffer import MessageBuffer
from taskscope.store.messages import encode_batch

logger = logging.getLogger(__name__)

# Time a closing socket may keep trying to deliver queued frames (ms).
LINGER_MS = 5000
FLUSH_PERIOD = 0.1


class BatchSender:
    """Buffers messages of this process and pushes them to one hub as batches."""

    def __init__(self, address: str, port: int) -> None:
        self.address = address
        self.port = port
        self.pid = os.getpid()
        self.buffer = MessageBuffer()
        self._send_lock = threading.Lock()  # one frame at a time on the socket
        self._context = zmq.Context()
        self._socket = self._context.socket(zmq.PUSH)
        self._socket.setsockopt(zmq.LINGER, LINGER_MS)
        # Unbounded queue: monitoring never blocks a task and never drops a message when the
        # hub is briefly slow (messages are small, and the hub drains far faster than tasks).
        self._socket.setsockopt(zmq.SNDHWM, 0)
        self._socket.connect(f"tcp://{address}:{port}")
        self._closed = False
        self._kicked = False
        self._kicks: queue.SimpleQueue[None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._flusher, name="taskscope-sender", daemon=True)
        self._thread.start()

    def send(self, message) -> None:  # the Sink protocol (sampler.Sink)
        self.buffer.add(message)
        self.kick()

    def kick(self) -> None:
        """Have the flusher send soon; wakes it at most once per flush."""
        if not self._kicked:
            self._kicked = True
            self._kicks.put(None)

    def flush(self) -> None:
        with self._send_lock:
            batch = self.buffer.take()
            if batch and not self._closed:
                self._socket.send(encode_batch(batch), copy=False)

    def _flusher(self) -> None:
        while not self._closed:
            try:
                self._kicks.get(timeout=FLUSH_PERIOD)
            except queue.Empty:
                pass
            self._kicked = False
            if os.getpid() != self.pid:
                return
            try:
                self.flush()
            except zmq.ZMQError as e:  # the context was closed at interpreter exit
                logger.debug("monitoring flush failed: %s", e)
                return

    def close(self) -> None:
        if self._closed:
            return
        self.flush()
        with self._send_lock:
            self._closed = True
            self._socket.close()
            self._context.term()


_senders: dict[tuple[str, int], BatchSender] = {}
_senders_lock = threading.Lock()
_senders_pid = os.getpid()


def sender_for(address: str, port: int) -> BatchSender:
    """This process's sender to ``address:port`` (made on first use, remade after fork)."""
    global _senders_pid
    key = (address, port)
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
            sender = _senders[key] = BatchSender(address, port)
        return sender


def flush_all() -> None:
    """Send everything buffered in this process now (for executors about to exit)."""
    if _senders_pid != os.getpid():
        return
    for sender in list(_senders.values()):
        try:
            sender.flush()
        except zmq.ZMQError as e:
            logger.debug("monitoring flush failed: %s", e)


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
