"""The durable spool beside a monitoring database: ``<db>.spool/``.

Every monitoring frame (one msgpack batch of messages) is appended here before it is applied
to the database, so an event handed to monitoring survives a SIGKILL of the workflow or of
the writer: whatever is in the spool and not yet in the database is written by the next run
on that database or by ``taskscope recover DB`` (``store/replay.py`` owns that protocol).

Layout. A *stream* is the frames of one appending process (the workflow's own messages, or
the frames the writer received from workers); it is a series of *segments*
``<stream>.<seq>.seg``. A segment is a sequence of frames, each ``length, crc32, payload``
(little-endian 32-bit integers). A segment's owner holds an exclusive ``flock`` on it while it
may still append, so another process never replays a live segment; the kernel releases the
lock when the owner exits, however it exits. A frame cut short by a kill (the last one of a
segment) is ignored; a frame whose checksum does not match ends the readable part of its
segment.

Tagged streams. The frames the writer took from the hub port (role ``TAGGED_ROLE``) start
with a ``TAG``: the sender id and sequence number of the sealed frame they came from
(``monitoring/auth.py``). The applier records the highest applied sequence of each sender in
``SEQUENCE_TABLE`` with the rows, so that a writer started again on this database knows every
frame already accepted (the table, plus the tags still in the spool) and refuses its replay.

Appends are not fsynced: a frame is in the page cache once ``write`` returns, which survives
the death of any process (not of the machine). Measured cost: about 50 µs for a 4 KB frame
(``bench/README.md``), a frame every 20-50 ms per process.
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
import secrets
import sqlite3
import struct
import time
import weakref
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

SPOOL_SUFFIX = ".spool"
SEGMENT_SUFFIX = ".seg"
TAIL_SUFFIX = ".tail"
FRAME_HEADER = struct.Struct("<II")  # payload length, crc32 of the payload
# Refuse absurd lengths (a corrupt header) before reading them; a batch is a few KB to ~1 MB.
MAX_FRAME_BYTES = 64 * 1024 * 1024
# A new segment after this many bytes, so applied segments can be deleted during the run.
SEGMENT_BYTES = 16 * 1024 * 1024
# The writer says why recording is delayed (a lock) in this file while it lasts.
DELAY_NOTE = "delayed"
APPLIED_TABLE = "taskscope_spool_applied"
SEQUENCE_TABLE = "taskscope_sender_sequence"
# Streams whose frames start with a TAG (sender id, sequence number); other roles carry none.
TAGGED_ROLE = "hub"
TAG = struct.Struct(">8sQ")

_SEGMENT_RE = re.compile(
    r"^(?P<stream>[0-9]{19}-[0-9]+-[a-z]+-[0-9a-f]{8})\.(?P<seq>[0-9]{6})\.seg$"
)


def spool_dir(db_path: str | os.PathLike[str]) -> Path:
    """The spool directory of the database at ``db_path``."""
    return Path(str(db_path) + SPOOL_SUFFIX)


def new_stream_id(role: str) -> str:
    """A stream name that sorts by creation time and is never reused."""
    return f"{time.time_ns():019d}-{os.getpid()}-{role}-{secrets.token_hex(4)}"


def is_tagged(stream: str) -> bool:
    """True for a stream whose frames start with a TAG (see the module docstring)."""
    return stream.split("-")[2] == TAGGED_ROLE


def segment_name(stream: str, seq: int) -> str:
    return f"{stream}.{seq:06d}{SEGMENT_SUFFIX}"


def parse_segment_name(name: str) -> tuple[str, int] | None:
    """(stream, seq) of a segment file name; None for any other file."""
    match = _SEGMENT_RE.match(name)
    if match is None:
        return None
    return match["stream"], int(match["seq"])


def list_segments(directory: Path) -> list[str]:
    """Segment names in ``directory``, oldest stream first and each stream in order."""
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    return sorted(n for n in names if parse_segment_name(n) is not None)


def is_locked(path: Path) -> bool:
    """True while some process (this one included, through another descriptor) holds the
    segment open for appending."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def hold_tail(directory: Path, stream: str) -> int:
    """Lock ``stream`` as tailed by this process (the run's writer): while it is held, no
    other process replays the stream's segments, even those its appender has let go of (a
    killed workflow's, which its writer is still finishing). Raises BlockingIOError if
    another process holds it."""
    fd = os.open(directory / (stream + TAIL_SUFFIX), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise
    return fd


def tail_held(directory: Path, stream: str) -> bool:
    """True while a live writer tails ``stream`` (see hold_tail)."""
    return is_locked(directory / (stream + TAIL_SUFFIX))


def release_tail(directory: Path, stream: str, fd: int) -> None:
    """Let go of a stream this process tailed; its lock file goes once no segment is left."""
    if not any(n.startswith(stream + ".") for n in list_segments(directory)):
        try:
            (directory / (stream + TAIL_SUFFIX)).unlink()
        except FileNotFoundError:
            pass
    os.close(fd)


def claim(path: Path) -> int | None:
    """An open descriptor holding ``path`` exclusively (to replay it), or None when a live
    process holds it (or it is gone)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


_open_writers: weakref.WeakSet[SpoolWriter] = weakref.WeakSet()


def _forget_writers_in_child() -> None:
    # A forked child shares the parent's open segment, and with it the lock: were the child
    # to keep it, the segment would never read as complete after the parent let go.
    for writer in list(_open_writers):
        writer._fd_lost_in_fork()


os.register_at_fork(after_in_child=_forget_writers_in_child)


class SpoolWriter:
    """Appends frames to one stream's segments; not thread-safe (one appending thread)."""

    def __init__(self, directory: Path, stream: str, segment_bytes: int = SEGMENT_BYTES) -> None:
        self.directory = directory
        self.stream = stream
        self.segment_bytes = segment_bytes
        self.frames = 0
        self.bytes = 0
        self._seq = -1
        self._fd: int | None = None
        self._size = 0
        # When the append under way began (monotonic), None between appends: a filesystem
        # that is frozen or hung blocks the write in the kernel, where only another thread
        # can see it (monitoring/stall.py watches this).
        self.busy_since: float | None = None
        directory.mkdir(mode=0o700, exist_ok=True)
        self._open_next()
        _open_writers.add(self)

    def _fd_lost_in_fork(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _open_next(self) -> None:
        self._seq += 1
        path = self.directory / segment_name(self.stream, self._seq)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
        old, self._fd, self._size = self._fd, fd, 0
        # The next segment is locked before the old one is released: a reader that sees the
        # old one unlocked knows it is complete.
        if old is not None:
            os.close(old)

    def append(self, payload: bytes | memoryview, tag: bytes | memoryview = b"") -> None:
        """Append one frame (header, ``tag`` and payload in one write); the frame's payload
        as read back is ``tag + payload``."""
        if self._fd is None:
            raise ValueError("the spool writer is closed")
        self.busy_since = time.monotonic()
        try:
            if self._size >= self.segment_bytes:
                self._open_next()
            length = len(tag) + len(payload)
            header = FRAME_HEADER.pack(length, zlib.crc32(payload, zlib.crc32(tag)))
            written = os.writev(self._fd, [header, tag, payload])
        finally:
            self.busy_since = None
        expected = FRAME_HEADER.size + length
        if written != expected:  # a short write (a full disk): the frame would be torn
            raise OSError(f"short write to the monitoring spool ({written} of {expected} bytes)")
        self._size += written
        self.frames += 1
        self.bytes += written

    def close(self) -> None:
        """Release the last segment: from now on it reads as complete."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


@dataclass
class ReadResult:
    frames: list[bytes]
    ends: list[int]  # the offset just after each frame
    offset: int  # where the next frame starts
    partial: bool  # an incomplete frame follows (still being written, or cut by a kill)
    corrupt: bool  # a frame failed its checksum: nothing after ``offset`` can be read


def read_frames(fd: int, offset: int, max_bytes: int) -> ReadResult:
    """The complete frames from ``offset``: about ``max_bytes`` of them, and at least one
    whole frame when one is there, however large."""
    max_bytes = max(max_bytes, 65536)
    header = FRAME_HEADER.size
    frames: list[bytes] = []
    ends: list[int] = []
    base = offset
    data = os.pread(fd, max_bytes, base)
    at_end = len(data) < max_bytes  # this read reached the end of the file
    i = 0
    while True:
        if len(data) - i < header:
            return ReadResult(frames, ends, base + i, at_end and len(data) > i, False)
        length, crc = FRAME_HEADER.unpack_from(data, i)
        if length > MAX_FRAME_BYTES:
            return ReadResult(frames, ends, base + i, False, True)
        end = i + header + length
        if end > len(data):
            if at_end:
                return ReadResult(frames, ends, base + i, True, False)
            if frames:  # the rest next time
                return ReadResult(frames, ends, base + i, False, False)
            # One frame larger than max_bytes: read exactly that frame.
            base += i
            data = os.pread(fd, header + length, base)
            i, end, at_end = 0, header + length, False
            if len(data) < end:
                return ReadResult(frames, ends, base, True, False)
        payload = data[i + header : end]
        if zlib.crc32(payload) != crc:
            return ReadResult(frames, ends, base + i, False, True)
        frames.append(payload)
        i = end
        ends.append(base + i)


def batch_length(payload: bytes) -> int:
    """How many messages a frame holds, from its msgpack array header (0 if not an array)."""
    if not payload:
        return 0
    first = payload[0]
    if 0x90 <= first <= 0x9F:
        return first & 0x0F
    if first == 0xDC and len(payload) >= 3:
        return int.from_bytes(payload[1:3], "big")
    if first == 0xDD and len(payload) >= 5:
        return int.from_bytes(payload[1:5], "big")
    return 0


def count_frames(path: Path, offset: int, limit: int = 100_000) -> tuple[int, int]:
    """(frames, messages) from ``offset`` to the end of the segment, reading only headers;
    stops after ``limit`` frames."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return 0, 0
    frames = messages = 0
    parsed = parse_segment_name(path.name)
    batch_at = FRAME_HEADER.size  # where the msgpack batch starts, after any tag
    if parsed is not None and is_tagged(parsed[0]):
        batch_at += TAG.size
    try:
        size = os.fstat(fd).st_size
        header = FRAME_HEADER.size
        while offset + header <= size and frames < limit:
            head = os.pread(fd, batch_at + 5, offset)
            length, _crc = FRAME_HEADER.unpack_from(head)
            if length > MAX_FRAME_BYTES or offset + header + length > size:
                break
            frames += 1
            messages += batch_length(head[batch_at:])
            offset += header + length
    finally:
        os.close(fd)
    return frames, messages


def spooled_sequences(directory: Path) -> dict[bytes, int]:
    """Sender id -> highest sequence number in the tags of the spool's tagged segments (what
    a writer accepted and has not necessarily applied yet); reads only frame heads."""
    highest: dict[bytes, int] = {}
    for name in list_segments(directory):
        parsed = parse_segment_name(name)
        if parsed is None or not is_tagged(parsed[0]):
            continue
        try:
            fd = os.open(directory / name, os.O_RDONLY)
        except FileNotFoundError:
            continue  # applied and deleted meanwhile: its tags are in SEQUENCE_TABLE
        try:
            size = os.fstat(fd).st_size
            offset = 0
            head_bytes = FRAME_HEADER.size + TAG.size
            while offset + head_bytes <= size:
                head = os.pread(fd, head_bytes, offset)
                length, _crc = FRAME_HEADER.unpack_from(head)
                if length > MAX_FRAME_BYTES or length < TAG.size:
                    break  # a damaged header: nothing after it is read by the applier either
                sender, sequence = TAG.unpack_from(head, FRAME_HEADER.size)
                if sequence > highest.get(sender, 0):
                    highest[sender] = sequence
                offset += FRAME_HEADER.size + length
        finally:
            os.close(fd)
    return highest


# -- what the dashboard shows --------------------------------------------------------------


@dataclass(frozen=True)
class SpoolState:
    """Events in the spool that are not in the database yet, and what the user should know."""

    events: int
    frames: int
    live: bool  # a running writer owns some of them (it is catching up)
    note: str  # one sentence for the dashboard's freshness line


def applied_offsets(conn: sqlite3.Connection) -> dict[str, int]:
    """Segment -> bytes already applied, from the database (empty when never replayed)."""
    try:
        rows = conn.execute(f"SELECT segment, byte_offset FROM {APPLIED_TABLE}").fetchall()
    except sqlite3.OperationalError:  # no such table: nothing was applied from a spool
        return {}
    return dict(rows)


def unwritten(
    db_path: str | os.PathLike[str], conn: sqlite3.Connection | None = None
) -> SpoolState | None:
    """What the spool of ``db_path`` holds beyond the database; None when nothing.

    ``conn`` (read-only is enough) reads the applied offsets; without it every spooled frame
    counts as unwritten."""
    directory = spool_dir(db_path)
    names = list_segments(directory)
    if not names:
        return None
    offsets = applied_offsets(conn) if conn is not None else {}
    events = frames = 0
    live = False
    for name in names:
        path = directory / name
        f, m = count_frames(path, offsets.get(name, 0))
        frames += f
        events += m
        parsed = parse_segment_name(name)
        if is_locked(path) or (parsed is not None and tail_held(directory, parsed[0])):
            live = True
    if not frames:
        return None
    delay = delay_reason(directory)
    if delay:
        note = f"{events:,} events not written yet: recording is delayed ({delay})"
    elif live:
        note = f"{events:,} events not written yet: the monitoring writer is catching up"
    else:
        note = (
            f"{events:,} events of a stopped run are not written yet: "
            f"run `taskscope recover {db_path}`"
        )
    return SpoolState(events, frames, live, note)


def note_delay(directory: Path, reason: str | None) -> None:
    """Record (or, with None, clear) why the writer is delayed, for readers of the spool."""
    path = directory / DELAY_NOTE
    try:
        if reason is None:
            path.unlink(missing_ok=True)
        else:
            tmp = directory / (DELAY_NOTE + ".tmp")
            tmp.write_text(reason)
            os.replace(tmp, path)
    except OSError as e:
        logger.debug("cannot write the spool's delay note: %s", e)


def delay_reason(directory: Path) -> str | None:
    try:
        return (directory / DELAY_NOTE).read_text().strip() or None
    except OSError:
        return None


def unwritten_note(
    db_path: str | os.PathLike[str],
    read: Callable[[Callable[[sqlite3.Connection], SpoolState | None]], SpoolState | None]
    | None = None,
) -> str | None:
    """The dashboard's note on events spooled and not yet in the database (None: none).

    ``read`` runs a function on a read-only connection (the dashboard's own source); without
    it every spooled frame counts as unwritten."""
    if not list_segments(spool_dir(db_path)):
        return None  # the usual case costs one directory listing
    state = unwritten(db_path) if read is None else read(lambda conn: unwritten(db_path, conn))
    return state.note if state is not None else None
