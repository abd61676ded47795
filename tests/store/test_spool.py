"""The durable spool (store/spool.py) and its exactly-once replay (store/replay.py)."""

from __future__ import annotations

import os
import sqlite3
import time
import uuid

import pytest

from taskscope.store.database import open_for_writing
from taskscope.store.messages import TaskInfo, TaskStatus, WorkflowStart, encode_batch
from taskscope.store.replay import SpoolApplier, recover
from taskscope.store.spool import (
    FRAME_HEADER,
    TAG,
    TAGGED_ROLE,
    SpoolWriter,
    batch_length,
    claim,
    count_frames,
    is_locked,
    list_segments,
    new_stream_id,
    read_frames,
    spool_dir,
    spooled_sequences,
    unwritten,
)
from taskscope.store.writer import DatabaseWriter

T0 = 1_700_000_000.0


def start(run_id: str) -> WorkflowStart:
    return WorkflowStart(run_id, "w", "1", T0, "host", "user", "/tmp", "3.11", "0", ["x"], 1, 2.0)


def task_frames(run_id: str, first: int, count: int) -> bytes:
    """One frame: a task and its final state for each of ``count`` tasks."""
    messages = []
    for task_id in range(first, first + count):
        messages.append(TaskInfo(run_id, task_id, "f", False, "x", T0 + task_id))
        messages.append(TaskStatus(run_id, task_id, 0, "exec_done", T0 + task_id + 0.5))
    return encode_batch(messages)


def counts(db) -> tuple[int, int, int]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        tasks = conn.execute("SELECT count(*) FROM task").fetchone()[0]
        done = conn.execute("SELECT count(*) FROM status").fetchone()[0]
        completed = conn.execute("SELECT tasks_completed_count FROM workflow").fetchone()[0]
    finally:
        conn.close()
    return tasks, done, completed


def test_tagged_frames_count_and_apply_once_and_their_sequences_are_remembered(tmp_path):
    """The hub's stream keeps each frame's sender and sequence number: the spool tells them
    before the frames are applied, the database after (the segments are gone)."""
    run_id = str(uuid.uuid4())
    db = tmp_path / "m.db"
    directory = spool_dir(db)
    kernel = SpoolWriter(directory, new_stream_id("kernel"))
    kernel.append(encode_batch([start(run_id)]))
    kernel.close()
    hub = SpoolWriter(directory, new_stream_id(TAGGED_ROLE))
    hub.append(task_frames(run_id, 0, 3), tag=TAG.pack(b"sender-a", 1))
    hub.append(task_frames(run_id, 3, 20), tag=TAG.pack(b"sender-a", 2))
    hub.append(task_frames(run_id, 23, 1), tag=TAG.pack(b"sender-b", 7))
    hub.close()
    assert count_frames(directory / list_segments(directory)[1], 0) == (3, 48)
    assert spooled_sequences(directory) == {b"sender-a": 2, b"sender-b": 7}
    conn = open_for_writing(db)
    applier = SpoolApplier(DatabaseWriter(conn), directory)
    assert applier.accepted_sequences() == {b"sender-a": 2, b"sender-b": 7}
    while applier.apply_pass() or applier.has_work():
        applier.commit()
    applier.close()
    assert list_segments(directory) == []
    assert applier.accepted_sequences() == {b"sender-a": 2, b"sender-b": 7}
    conn.close()
    assert counts(db) == (24, 24, 24)


def test_frames_read_back_in_order_and_a_cut_last_frame_is_ignored(tmp_path):
    writer = SpoolWriter(tmp_path, new_stream_id("kernel"))
    payloads = [os.urandom(n) for n in (1, 100, 5000, 200_000)]
    for p in payloads:
        writer.append(p)
    writer.close()
    (name,) = list_segments(tmp_path)
    path = tmp_path / name
    # A kill in the middle of the next append: a header and part of its payload.
    with open(path, "ab") as f:
        f.write(FRAME_HEADER.pack(1000, 0) + b"x" * 10)
    fd = os.open(path, os.O_RDONLY)
    got, offset = [], 0
    while True:
        result = read_frames(fd, offset, 65536)
        got.extend(result.frames)
        offset = result.offset
        if not result.frames:
            break
    os.close(fd)
    assert got == payloads
    assert result.partial and not result.corrupt
    assert offset == path.stat().st_size - FRAME_HEADER.size - 10


def test_a_damaged_frame_ends_the_readable_part(tmp_path):
    writer = SpoolWriter(tmp_path, new_stream_id("kernel"))
    writer.append(b"good")
    writer.append(b"damaged")
    writer.close()
    path = tmp_path / list_segments(tmp_path)[0]
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    fd = os.open(path, os.O_RDONLY)
    result = read_frames(fd, 0, 65536)
    os.close(fd)
    assert result.frames == [b"good"] and result.corrupt


def test_segments_rotate_and_a_live_segment_is_locked(tmp_path):
    writer = SpoolWriter(tmp_path, new_stream_id("recv"), segment_bytes=1000)
    for _ in range(5):
        writer.append(b"x" * 600)
    names = list_segments(tmp_path)
    assert len(names) == 3  # two frames fill a segment past 1000 bytes
    *sealed, live = [tmp_path / n for n in names]
    assert [is_locked(p) for p in sealed] == [False, False] and is_locked(live)
    assert claim(live) is None  # nobody replays a segment its writer still appends to
    writer.close()
    fd = claim(live)
    assert fd is not None
    os.close(fd)


def test_frame_counts_come_from_the_headers(tmp_path):
    run_id = str(uuid.uuid4())
    writer = SpoolWriter(tmp_path, new_stream_id("kernel"))
    writer.append(task_frames(run_id, 0, 3))  # 6 messages (a fixarray)
    writer.append(task_frames(run_id, 3, 20))  # 40 messages (array 16)
    writer.close()
    assert batch_length(task_frames(run_id, 0, 3)) == 6
    assert count_frames(tmp_path / list_segments(tmp_path)[0], 0) == (2, 46)


def spool_of(db, run_id: str, frames: int, per_frame: int = 10) -> None:
    writer = SpoolWriter(spool_dir(db), new_stream_id("kernel"))
    writer.append(encode_batch([start(run_id)]))
    for i in range(frames):
        writer.append(task_frames(run_id, i * per_frame, per_frame))
    writer.close()


def test_replay_writes_each_frame_once_even_when_interrupted(tmp_path):
    db = tmp_path / "monitoring.db"
    run_id = str(uuid.uuid4())
    spool_of(db, run_id, frames=30, per_frame=200)
    # A first writer applies part of the spool and commits, then stages more and "dies"
    # before committing (its transaction is rolled back, as SQLite does after a kill).
    conn = open_for_writing(db)
    writer = DatabaseWriter(conn)
    applier = SpoolApplier(writer, spool_dir(db))
    applier.apply_pass(read_bytes=65536)
    applier.commit()
    committed = counts(db)
    applier.apply_pass(read_bytes=65536)
    writer.rollback()
    applier.close()
    conn.close()
    assert 0 < committed[0] < 6000
    # The next one (the next run, or `taskscope recover`) finishes exactly where it stopped.
    result = recover(db)
    assert counts(db) == (6000, 6000, 6000)
    assert result.messages == 2 * (6000 - committed[0])
    assert list_segments(spool_dir(db)) == []
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT count(*) FROM taskscope_spool_applied").fetchone() == (0,)
    conn.close()
    # Nothing left: recovering again changes nothing.
    assert recover(db).messages == 0
    assert counts(db) == (6000, 6000, 6000)


def test_recover_counts_each_message_once(tmp_path):
    db = tmp_path / "monitoring.db"
    run_id = str(uuid.uuid4())
    spool_of(db, run_id, frames=7, per_frame=3)
    result = recover(db)
    assert result.segments == 1 and result.frames == 8 and result.messages == 1 + 7 * 3 * 2
    assert counts(db) == (21, 21, 21)


def test_recover_leaves_segments_of_a_live_writer_alone(tmp_path):
    db = tmp_path / "monitoring.db"
    run_id = str(uuid.uuid4())
    live = SpoolWriter(spool_dir(db), new_stream_id("kernel"))
    live.append(encode_batch([start(run_id)]))
    live.append(task_frames(run_id, 0, 5))
    state = unwritten(db)
    assert state is not None and state.live and state.events == 11
    assert "catching up" in state.note
    result = recover(db)
    assert result.live == 1 and result.messages == 0
    live.close()  # its process "died"
    state = unwritten(db)
    assert state is not None and not state.live and "taskscope recover" in state.note
    assert recover(db).messages == 11
    conn = sqlite3.connect(db)
    assert unwritten(db, conn) is None
    conn.close()


def test_a_deleted_database_is_rebuilt_from_its_spool(tmp_path):
    db = tmp_path / "monitoring.db"
    run_id = str(uuid.uuid4())
    spool_of(db, run_id, frames=2)
    assert not db.exists()
    recover(db)
    assert counts(db) == (20, 20, 20)


def test_a_locked_database_is_waited_for_and_nothing_is_lost(tmp_path):
    db = tmp_path / "monitoring.db"
    open_for_writing(db).close()
    run_id = str(uuid.uuid4())
    spool_of(db, run_id, frames=3)
    blocker = sqlite3.connect(db, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    told: list[str] = []

    def unlock_later(reason: str) -> None:
        told.append(reason)
        blocker.execute("COMMIT")  # the lock goes away after the first retry is announced

    started = time.monotonic()
    recover(db, on_busy=unlock_later)
    assert told == ["the database is locked by another process"]
    assert counts(db) == (30, 30, 30)
    assert time.monotonic() - started < 60
    blocker.close()


@pytest.mark.parametrize("frames", [0, 1])
def test_an_empty_spool_is_nothing_to_write(tmp_path, frames):
    db = tmp_path / "monitoring.db"
    open_for_writing(db).close()
    writer = SpoolWriter(spool_dir(db), new_stream_id("kernel"))
    if frames:
        writer.append(b"\x90")  # an empty batch
    writer.close()
    assert recover(db).messages == 0
    assert list_segments(spool_dir(db)) == []


def test_a_stream_its_writer_is_finishing_is_not_replayed_by_another(tmp_path):
    """The workflow process died (its segment is unlocked) while its writer, alive, still
    finishes the stream: another run's writer must leave that stream alone, or both would
    write the same frames."""
    db = tmp_path / "monitoring.db"
    run_id = str(uuid.uuid4())
    stream = new_stream_id("kernel")
    appender = SpoolWriter(spool_dir(db), stream)
    appender.append(encode_batch([start(run_id)]))
    appender.append(task_frames(run_id, 0, 5))
    appender.close()  # the workflow process is gone
    conn = open_for_writing(db)
    finishing = SpoolApplier(DatabaseWriter(conn), spool_dir(db), own_streams=[stream])
    assert recover(db).messages == 0  # another process: the stream is its writer's
    finishing.apply_pass()
    finishing.commit()
    finishing.apply_pass()  # the segment is complete: deleted at the next commit
    finishing.commit()
    finishing.close()
    conn.close()
    assert counts(db) == (5, 5, 5)
    assert os.listdir(spool_dir(db)) == []  # segments and the stream's lock file are gone
