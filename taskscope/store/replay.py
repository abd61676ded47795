"""Applying a spool (``store/spool.py``) to its database exactly once.

``taskscope_spool_applied`` (created on demand) holds, for each segment, how many of its bytes
and frames are in the database. It is updated in the same transaction as the rows those
frames produced, so after any crash the database and the table agree, and a replay starts
exactly where the last commit ended: no frame is written twice (the writer's counters would
count it twice) and none is skipped.

A segment is deleted once it is complete (its owner released it) and its last frame is
committed; its row goes in the next transaction, so a crash between the two leaves a row for
a file that no longer exists, never a file without its row.

Frames of tagged streams (the hub port's, ``spool.is_tagged``) carry their sender's sequence
number; the highest one applied per sender goes in ``taskscope_sender_sequence`` in that same
transaction. With the tags still in the spool, it tells a writer started again what was
already accepted (``accepted_sequences``), so a replayed frame stays refused across restarts.

``SpoolApplier`` is used by the writer process during a run (it tails the run's own streams
and replays what earlier runs left), and by ``recover`` (``taskscope recover DB``).
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import msgspec

from taskscope.store.database import open_for_writing
from taskscope.store.errors import StoreError
from taskscope.store.messages import Message, decode_batch
from taskscope.store.readonly import is_busy
from taskscope.store.spool import (
    APPLIED_TABLE,
    SEQUENCE_TABLE,
    TAG,
    claim,
    count_frames,
    hold_tail,
    is_locked,
    is_tagged,
    list_segments,
    parse_segment_name,
    read_frames,
    release_tail,
    spool_dir,
    spooled_sequences,
    tail_held,
)
from taskscope.store.writer import DatabaseWriter

logger = logging.getLogger(__name__)

CREATE_APPLIED_TABLE = f"""
CREATE TABLE IF NOT EXISTS {APPLIED_TABLE} (
    segment TEXT NOT NULL PRIMARY KEY,
    frames INTEGER NOT NULL,
    byte_offset INTEGER NOT NULL
)"""
_RECORD_APPLIED = f"""
INSERT INTO {APPLIED_TABLE} (segment, frames, byte_offset) VALUES (?, ?, ?)
ON CONFLICT (segment) DO UPDATE SET frames = excluded.frames,
    byte_offset = excluded.byte_offset"""
CREATE_SEQUENCE_TABLE = f"""
CREATE TABLE IF NOT EXISTS {SEQUENCE_TABLE} (
    sender BLOB NOT NULL PRIMARY KEY,
    last_sequence INTEGER NOT NULL
)"""
_RECORD_SEQUENCE = f"""
INSERT INTO {SEQUENCE_TABLE} (sender, last_sequence) VALUES (?, ?)
ON CONFLICT (sender) DO UPDATE SET
    last_sequence = max(last_sequence, excluded.last_sequence)"""
# How much of one segment a pass reads: bounds the writer's memory however far behind it is.
READ_BYTES = 1 << 20
# ...and how long one pass may decode for, so that commits and progress stay regular.
PASS_SECONDS = 0.25

DropCallback = Callable[[int, str], None]


def write_isolated(writer: DatabaseWriter, batch: list[Message], on_drop: DropCallback) -> None:
    """Stage ``batch``; if the database rejects a message (a constraint), stage the others
    one by one and drop only that one. SQLite's own failures (lock, disk) propagate."""
    conn = writer.conn
    writer.begin()
    conn.execute("SAVEPOINT batch")
    try:
        writer.write(batch)
        conn.execute("RELEASE batch")
        return
    except sqlite3.OperationalError:
        conn.execute("ROLLBACK TO batch")
        conn.execute("RELEASE batch")
        raise
    except Exception as e:  # noqa: BLE001 - isolate the message the database rejects
        logger.warning("a batch was rejected (%s); writing its messages one by one", e)
        conn.execute("ROLLBACK TO batch")
        conn.execute("RELEASE batch")
    for message in batch:
        conn.execute("SAVEPOINT one")
        try:
            writer.write([message])
            conn.execute("RELEASE one")
        except sqlite3.OperationalError:
            conn.execute("ROLLBACK TO one")
            conn.execute("RELEASE one")
            raise
        except Exception as e1:  # noqa: BLE001
            conn.execute("ROLLBACK TO one")
            conn.execute("RELEASE one")
            on_drop(1, f"message rejected by the database: {e1}: {message!r:.200}")


def ensure_applied_table(conn: sqlite3.Connection) -> None:
    """Create the table if needed (outside any transaction of the caller)."""
    conn.execute(CREATE_APPLIED_TABLE)
    conn.execute(CREATE_SEQUENCE_TABLE)


class _Segment:
    __slots__ = (
        "committed_frames",
        "committed_offset",
        "complete",
        "fd",
        "frames",
        "name",
        "offset",
        "own",
        "path",
        "seq",
        "stream",
        "tagged",
    )

    def __init__(
        self, directory: Path, name: str, fd: int, own: bool, applied: tuple[int, int]
    ) -> None:
        self.name = name
        self.path = directory / name
        parsed = parse_segment_name(name)
        if parsed is None:
            raise ValueError(f"not a spool segment name: {name!r}")
        self.stream, self.seq = parsed
        self.tagged = is_tagged(self.stream)
        self.fd = fd
        self.own = own
        self.frames, self.offset = applied
        self.committed_frames, self.committed_offset = applied
        self.complete = False  # every frame it will ever hold has been staged


class SpoolApplier:
    """Reads a spool's segments and writes their messages through ``writer``.

    ``own_streams`` are streams of the running workflow: their segments are read while their
    owner still appends. Any other segment is replayed only when no live process holds it.
    """

    def __init__(
        self,
        writer: DatabaseWriter,
        directory: Path,
        own_streams: Iterable[str] = (),
        on_drop: DropCallback | None = None,
        throttle_s: float = 0.0,
    ) -> None:
        self.writer = writer
        self.directory = directory
        self.own_streams = set(own_streams)
        self.on_drop = on_drop or (lambda n, why: logger.warning("dropped %d: %s", n, why))
        self.throttle_s = throttle_s
        self.messages_applied = 0
        self.frames_applied = 0
        self.replayed_segments = 0  # leftovers of other processes taken over
        self.live_elsewhere: set[str] = set()  # segments a live process of another run holds
        self._segments: dict[str, _Segment] = {}
        self._finished: set[str] = set()  # deleted here; their rows go at the next commit
        self._forget: list[str] = []
        # Our streams are locked as ours for as long as we live (spool.hold_tail).
        self._tails: dict[str, int] = {}
        for stream in self.own_streams:
            self._tails[stream] = hold_tail(directory, stream)
        ensure_applied_table(writer.conn)
        self._applied = {
            name: (frames, offset)
            for name, frames, offset in writer.conn.execute(
                f"SELECT segment, frames, byte_offset FROM {APPLIED_TABLE}"
            )
        }
        # Sender -> highest sequence staged, not yet committed (tagged frames only).
        self._sequences: dict[bytes, int] = {}

    def accepted_sequences(self) -> dict[bytes, int]:
        """Sender id -> highest sequence number ever accepted on this database: applied (the
        table) or spooled and waiting. A frame at or below it is a replay."""
        highest = dict(
            self.writer.conn.execute(f"SELECT sender, last_sequence FROM {SEQUENCE_TABLE}")
        )
        for sender, sequence in spooled_sequences(self.directory).items():
            highest[sender] = max(sequence, highest.get(sender, 0))
        return highest

    # -- finding segments ----------------------------------------------------------------

    def add_stream(self, stream: str) -> None:
        self.own_streams.add(stream)
        self._tails[stream] = hold_tail(self.directory, stream)

    def scan(self) -> None:
        """Take up segments that appeared since the last scan."""
        for name in list_segments(self.directory):
            if name in self._segments or name in self._finished:
                continue
            parsed = parse_segment_name(name)
            if parsed is None:  # list_segments lists segments only
                continue
            stream = parsed[0]
            path = self.directory / name
            if stream in self.own_streams:
                try:
                    fd = os.open(path, os.O_RDONLY)
                except FileNotFoundError:
                    continue
                own = True
            else:
                # A live writer still finishing this stream (its appender may be gone) keeps
                # it; so does the appender itself, holding the segment.
                claimed = None if tail_held(self.directory, stream) else claim(path)
                if claimed is None:
                    self.live_elsewhere.add(name)
                    continue
                fd = claimed
                self.live_elsewhere.discard(name)
                self.replayed_segments += 1
                own = False
            applied = self._applied.get(name, (0, 0))
            self._segments[name] = _Segment(self.directory, name, fd, own, applied)

    def _current(self) -> list[_Segment]:
        """Per stream, the first segment not yet completely staged (streams apply in order)."""
        first: dict[str, _Segment] = {}
        for seg in sorted(self._segments.values(), key=lambda s: (s.stream, s.seq)):
            if not seg.complete and seg.stream not in first:
                first[seg.stream] = seg
        return list(first.values())

    # -- applying ------------------------------------------------------------------------

    def apply_pass(self, read_bytes: int = READ_BYTES) -> list[Message]:
        """Read what is new in each stream and stage it; returns the messages staged.

        Raises sqlite3.OperationalError when the database refuses (``is_busy``: retry later;
        nothing read in this pass is lost, it is read again)."""
        self.scan()
        staged: list[Message] = []
        deadline = time.monotonic() + PASS_SECONDS
        for seg in self._current():
            result = read_frames(seg.fd, seg.offset, read_bytes)
            if result.frames:
                messages: list[Message] = []
                sequences: list[tuple[bytes, int]] = []
                taken = 0
                for payload in result.frames:
                    if seg.tagged:
                        sequences.append(TAG.unpack_from(payload))
                        payload = payload[TAG.size :]
                    try:
                        messages.extend(decode_batch(payload))
                    except (msgspec.DecodeError, msgspec.ValidationError) as e:
                        self.on_drop(1, f"undecodable frame of {len(payload)} bytes: {e}")
                    taken += 1
                    if self.throttle_s:
                        time.sleep(self.throttle_s)
                    if time.monotonic() >= deadline:
                        break  # the rest next pass: the loop must commit and report
                if messages:
                    write_isolated(self.writer, messages, self.on_drop)
                else:
                    self.writer.begin()  # the offset still moves in a transaction
                seg.offset = result.ends[taken - 1]
                seg.frames += taken
                for sender, sequence in sequences[:taken]:
                    if sequence > self._sequences.get(sender, 0):
                        self._sequences[sender] = sequence
                self.frames_applied += taken
                self.messages_applied += len(messages)
                staged.extend(messages)
                continue
            if result.corrupt:
                self.on_drop(1, f"spool segment {seg.name} is damaged after byte {seg.offset}")
                seg.complete = True
            elif not seg.own or not is_locked(seg.path):
                # The owner is done: one more read catches a frame appended just before it
                # let go; after that the segment is complete.
                again = read_frames(seg.fd, seg.offset, read_bytes)
                if again.frames:
                    continue
                if again.partial:
                    logger.warning(
                        "spool segment %s ends with a cut frame (its writer was killed); "
                        "ignoring its last %d bytes",
                        seg.name,
                        os.fstat(seg.fd).st_size - seg.offset,
                    )
                seg.complete = True
        return staged

    def commit(self) -> None:
        """Record the offsets and commit with the rows; then delete finished segments."""
        writer = self.writer
        changed = [s for s in self._segments.values() if s.offset != s.committed_offset]
        if changed or self._forget:
            writer.begin()
            if changed:
                writer.conn.executemany(
                    _RECORD_APPLIED, [(s.name, s.frames, s.offset) for s in changed]
                )
            if self._sequences:
                writer.conn.executemany(_RECORD_SEQUENCE, self._sequences.items())
            if self._forget:
                writer.conn.executemany(
                    f"DELETE FROM {APPLIED_TABLE} WHERE segment = ?", [(n,) for n in self._forget]
                )
        writer.commit()
        self._forget.clear()
        self._sequences.clear()
        for seg in list(self._segments.values()):
            seg.committed_offset, seg.committed_frames = seg.offset, seg.frames
            if seg.complete:
                self._delete(seg)

    def _delete(self, seg: _Segment) -> None:
        os.close(seg.fd)
        try:
            seg.path.unlink()
        except FileNotFoundError:
            pass
        del self._segments[seg.name]
        self._finished.add(seg.name)
        if seg.name in self._applied or seg.committed_offset:
            self._forget.append(seg.name)

    def close(self) -> None:
        for seg in self._segments.values():
            os.close(seg.fd)
        self._segments.clear()
        for stream, fd in self._tails.items():
            release_tail(self.directory, stream, fd)
        self._tails.clear()

    # -- progress ------------------------------------------------------------------------

    def has_work(self) -> bool:
        """Segments taken up and not yet deleted (incomplete, or complete but uncommitted)."""
        return bool(self._segments) or bool(self._forget)

    def pending(self) -> tuple[int, int]:
        """(frames, messages) spooled for this applier and not staged yet."""
        frames = messages = 0
        for seg in self._segments.values():
            if not seg.complete:
                f, m = count_frames(seg.path, seg.offset)
                frames += f
                messages += m
        return frames, messages


# -- taskscope recover --------------------------------------------------------------------


@dataclass(frozen=True)
class Recovery:
    segments: int  # segments replayed
    messages: int  # messages written
    frames: int
    live: int  # segments left alone: a running writer owns them


def recover(
    db_path: str | os.PathLike[str],
    progress: Callable[[int, int], None] | None = None,
    on_busy: Callable[[str], None] | None = None,
    commit_interval: float = 0.5,
) -> Recovery:
    """Write every event left in the spool of ``db_path`` into it. ``progress(done, left)``
    is told messages written and messages left; ``on_busy(reason)`` once while a lock waits.
    Raises StoreError when the database cannot be opened for writing."""
    told_busy = False
    while True:
        try:
            conn = open_for_writing(db_path)
            break
        except StoreError as e:
            if e.__cause__ is None or not is_busy(e.__cause__):
                raise
            if on_busy is not None and not told_busy:
                on_busy("the database is locked by another process")
                told_busy = True
            time.sleep(0.5)
    writer = DatabaseWriter(conn)
    try:
        applier = SpoolApplier(writer, spool_dir(db_path))
        last_commit = time.monotonic()
        while True:
            try:
                staged = applier.apply_pass()
                now = time.monotonic()
                if now - last_commit >= commit_interval or not staged:
                    applier.commit()
                    last_commit = now
            except sqlite3.OperationalError as e:
                if not is_busy(e):
                    raise
                writer.rollback()
                if on_busy is not None and not told_busy:
                    on_busy("the database is locked by another process")
                    told_busy = True
                time.sleep(0.5)
                continue
            if progress is not None:
                progress(applier.messages_applied, applier.pending()[1])
            if not staged and not applier.has_work():
                break
        writer.close(analyze=True)
    except BaseException:
        try:
            writer.rollback()
        finally:
            conn.close()
        raise
    return Recovery(
        applier.replayed_segments,
        applier.messages_applied,
        applier.frames_applied,
        len(applier.live_elsewhere),
    )
