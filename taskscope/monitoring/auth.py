"""Authenticated frames on the hub port: only the run's own processes can add to its rows.

The hub's port is reachable by every process on the machine (and, with ``hub_address`` set,
the network). So each run gets a random secret (`new_secret`), handed to the writer process
on its stdin and to workers inside the hub target that travels with the tasks (never on a
command line or in a file), and every frame on the port is sealed with it:

    b"T" | sender id (8) | sequence number (8) | payload length (8) | header MAC (16)
         | payload | frame MAC (32)

Both MACs are HMAC-SHA256 under a per-run key derived from the secret and the run id. The
header MAC covers the fields before it, the frame MAC everything before it. The hub checks,
in this order: the header MAC, which costs about a microsecond whatever the frame's size, so
a 64 MB junk frame is refused as cheaply as a small one; the length; the sequence number,
which must be above the last one accepted from that sender (each sender process draws a
random id and counts from 1), so a frame captured and sent again is refused before its
payload is hashed; then the frame MAC. Only after that is anything decoded. A frame of
another run fails the header MAC (another key). A sender's frames travel on one ZeroMQ
connection, in order, so a genuine frame is never refused as a replay.

The last sequence accepted from each sender outlives the writer process: the receiver spools
each payload behind its sender id and sequence number (``TAG``, the same 16 bytes as in the
header), the applier records the highest applied one per sender in the database with the
rows, and a writer started again seeds its gate with both (``store/replay.py``,
``accepted_sequences``). So a frame captured before a restart is still refused as a replay.

Refused frames are counted and logged once per peer and reason, then summarised at most
every LOG_EVERY_S seconds: a flood costs the hub microseconds per frame, not a log line.
"""

from __future__ import annotations

import hmac
import logging
import os
import secrets
import struct
import threading
import time

from taskscope.store.messages import encode_batch

logger = logging.getLogger(__name__)

MAGIC = b"T"
SENDER_BYTES = 8
HEADER = struct.Struct(">c8sQQ")  # magic, sender id, sequence number, payload length
TAG = slice(1, 1 + SENDER_BYTES + 8)  # sender id and sequence number, as the spool keeps them
# The hub's answer on a sender's connection once its frames are spooled: the highest sequence
# number spooled so far (the sender lets go of every frame up to it; monitoring/sender.py).
CONFIRMATION = struct.Struct(">Q")
# The hub's question to each connected sender when the run closes: "send what you hold". Its
# length differs from a confirmation's, which earlier senders take as the only thing to read.
# The sender answers, after its buffered messages, with a sealed frame of no messages (an
# empty batch is never sent otherwise): once it arrives, that connection has nothing left.
FLUSH_REQUEST = b"flush"
FLUSH_ANSWER = encode_batch([])
HEADER_MAC_BYTES = 16
PAYLOAD_START = HEADER.size + HEADER_MAC_BYTES
MAC_BYTES = 32
OVERHEAD = PAYLOAD_START + MAC_BYTES
HEADER_DOMAIN = b"header\0"  # so that a header MAC is never a frame MAC
LOG_EVERY_S = 10.0
MAX_PEERS_LOGGED = 64  # distinct peers whose first refusal gets its own log line


def new_secret() -> str:
    """A run's secret, as text (it travels in JSON to the writer process)."""
    return secrets.token_hex(32)


def run_key(secret: str, run_id: str) -> bytes:
    """The MAC key of one run: frames sealed for another run, or with another secret, fail."""
    if not secret:
        raise ValueError("a monitoring run needs a secret to authenticate its frames")
    return hmac.digest(bytes.fromhex(secret), b"taskscope-hub-frame\0" + run_id.encode(), "sha256")


class FrameSealer:
    """Seals the frames of one sender process (thread-safe)."""

    def __init__(self, secret: str, run_id: str) -> None:
        self._key = run_key(secret, run_id)
        self._sender = os.urandom(SENDER_BYTES)
        self._sequence = 0
        self._lock = threading.Lock()

    def seal(self, payload: bytes) -> bytes:
        return self.seal_numbered(payload)[1]

    def seal_numbered(self, payload: bytes) -> tuple[int, bytes]:
        """(the frame's sequence number, the sealed frame): the hub confirms frames by it."""
        with self._lock:  # callers usually hold a send lock too; this keeps seal() safe alone
            self._sequence += 1
            sequence = self._sequence
        header = HEADER.pack(MAGIC, self._sender, sequence, len(payload))
        header_mac = hmac.digest(self._key, HEADER_DOMAIN + header, "sha256")[:HEADER_MAC_BYTES]
        body = header + header_mac + payload
        return sequence, body + hmac.digest(self._key, body, "sha256")


class FrameGate:
    """The hub's check of every frame: the payload of a genuine, fresh frame, else None.

    Single-threaded (the receive loop's)."""

    def __init__(self, secret: str, run_id: str, accepted: dict[bytes, int] | None = None) -> None:
        """``accepted``: sender id -> last sequence number accepted before (by an earlier
        writer process of this run); frames at or below it are replays."""
        self._key = run_key(secret, run_id)
        self._last_sequence: dict[bytes, int] = dict(accepted or {})
        self.refused = 0  # since the counter was last taken (take_refused)
        self.refused_total = 0
        self._by_reason: dict[str, int] = {}
        self._logged: set[tuple[str, str]] = set()
        self._last_summary = time.monotonic()

    def open(self, frame) -> memoryview | None:
        """`frame`: bytes, a memoryview or a zmq.Frame (its peer is named in the log)."""
        opened = self.open_tagged(frame)
        return None if opened is None else opened[1]

    def open_tagged(self, frame) -> tuple[memoryview, memoryview] | None:
        """(tag, payload) of a genuine, fresh frame, else None; the tag is its sender id and
        sequence number (16 bytes), what the spool keeps to remember it across restarts."""
        data = memoryview(frame.buffer if hasattr(frame, "buffer") else frame)
        if len(data) < OVERHEAD or data[:1] != MAGIC:
            self.refuse(frame, "not a sealed frame")
            return None
        expected = hmac.digest(self._key, HEADER_DOMAIN + data[: HEADER.size], "sha256")
        if not hmac.compare_digest(expected[:HEADER_MAC_BYTES], data[HEADER.size : PAYLOAD_START]):
            self.refuse(frame, "wrong MAC (another run, another secret, or altered)")
            return None
        _, sender, sequence, length = HEADER.unpack_from(data)
        if length != len(data) - OVERHEAD:
            self.refuse(frame, "truncated or extended (length does not match)")
            return None
        if sequence <= self._last_sequence.get(sender, 0):
            self.refuse(frame, "replayed (sequence number already seen)")
            return None
        body = data[:-MAC_BYTES]
        if not hmac.compare_digest(hmac.digest(self._key, body, "sha256"), data[-MAC_BYTES:]):
            self.refuse(frame, "wrong MAC (another run, another secret, or altered)")
            return None
        self._last_sequence[sender] = sequence
        return data[TAG], body[PAYLOAD_START:]

    def take_refused(self) -> int:
        """Frames refused since the last call (for the run's messages_dropped counter)."""
        count, self.refused = self.refused, 0
        return count

    def refuse(self, frame, reason: str) -> None:
        """Count and log (once per peer and reason) a frame that is not let in."""
        self.refused += 1
        self.refused_total += 1
        self._by_reason[reason] = self._by_reason.get(reason, 0) + 1
        peer = _peer(frame)
        if (peer, reason) not in self._logged and len(self._logged) < MAX_PEERS_LOGGED:
            self._logged.add((peer, reason))
            logger.warning(
                "monitoring frame refused from %s: %s (further refusals are "
                "counted and summarised)",
                peer,
                reason,
            )
        now = time.monotonic()
        if now - self._last_summary >= LOG_EVERY_S:
            self._last_summary = now
            summary = ", ".join(f"{count} {reason}" for reason, count in self._by_reason.items())
            logger.warning("monitoring frames refused so far: %s", summary)
        return


def tag_sequence(tag: bytes | memoryview) -> int:
    """The sequence number inside a frame's tag (``open_tagged``)."""
    return int.from_bytes(tag[SENDER_BYTES:], "big")


def _peer(frame) -> str:
    try:
        return frame.get("Peer-Address") or "an unknown peer"
    except Exception:  # noqa: BLE001 - bytes, or a libzmq without the property
        return "an unknown peer"
