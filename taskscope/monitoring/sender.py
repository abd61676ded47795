"""Worker side of the transport: a per-process batching ZeroMQ PUSH sender to the hub.

Messages are appended to a list (cheap, thread-safe under the GIL) and sent as one msgpack
frame per flush. The wrapper flushes when a try ends, the process's monitor thread flushes
every ~100 ms, and an atexit hook flushes whatever is left, so nothing buffered is lost when
a worker process exits normally.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading

import zmq

from taskscope.monitoring.messages import Message, encode_batch

logger = logging.getLogger(__name__)

# Time a closing socket may keep trying to deliver queued frames (ms).
LINGER_MS = 5000


class BatchSender:
    """Buffers messages of this process and pushes them to one hub as batches."""

    def __init__(self, address: str, port: int) -> None:
        self.address = address
        self.port = port
        self.pid = os.getpid()
        self._buffer: list[Message] = []
        self._lock = threading.Lock()
        self._context = zmq.Context()
        self._socket = self._context.socket(zmq.PUSH)
        self._socket.setsockopt(zmq.LINGER, LINGER_MS)
        # Unbounded queue: monitoring never blocks a task and never drops a message when the
        # hub is briefly slow (messages are small, and the hub drains far faster than tasks).
        self._socket.setsockopt(zmq.SNDHWM, 0)
        self._socket.connect(f"tcp://{address}:{port}")
        self._closed = False

    def send(self, message: Message) -> None:
        self._buffer.append(message)

    def flush(self) -> None:
        if not self._buffer:
            return
        with self._lock:
            batch, self._buffer = self._buffer, []
            if batch and not self._closed:
                self._socket.send(encode_batch(batch), copy=False)

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
        self.flush()
        with self._lock:
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
    if _senders_pid != os.getpid():
        return
    for sender in list(_senders.values()):
        try:
            sender.flush()
        except zmq.ZMQError as e:  # a closed context at interpreter exit
            logger.debug("monitoring flush failed: %s", e)


@atexit.register
def _close_all() -> None:
    if _senders_pid != os.getpid():
        return
    for sender in list(_senders.values()):
        try:
            sender.close()
        except zmq.ZMQError as e:
            logger.debug("monitoring sender close failed: %s", e)
    _senders.clear()
