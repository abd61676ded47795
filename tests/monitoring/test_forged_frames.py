"""10^5 hostile frames on the hub port of a live run: junk, truncated, oversized, forged
(unsealed, another secret, another run) and replayed. The run's real rows are complete and
untouched, and every hostile frame is counted in messages_dropped."""

from __future__ import annotations

import os
import random
import signal
import socket
import threading
import time

import msgspec
import pytest
import zmq
from monhelp import kernel_launch, query, started_hub, wait_for

from taskscope.monitoring import wrapper
from taskscope.monitoring.auth import FrameGate, FrameSealer, new_secret
from taskscope.monitoring.messages import TaskInfo, TaskStatus, WorkflowEnd, WorkflowStart
from taskscope.monitoring.receiver import MAX_FRAME_BYTES, THROTTLE_ENV
from taskscope.store.messages import encode_batch
from taskscope.store.spool import spool_dir, spooled_sequences

pytestmark = [pytest.mark.attack, pytest.mark.timeout(600)]  # slow only on a loaded machine

REAL_TASKS = 400
HOSTILE_FRAMES = 100_000


def dropped(folder) -> int:
    """The run's messages_dropped (0 until the writer has written the run's row)."""
    rows = query(folder, "SELECT messages_dropped FROM taskscope_run")
    return rows[0][0] if rows else 0


def forged_rows(run_id: str) -> bytes:
    """What an attacker would like in the run: a fake task, a huge count, /etc/shadow."""
    now = time.time()
    return encode_batch(
        [
            TaskInfo(run_id, 999_999, "forged", False, "x", now, stdout="/etc/shadow"),
            TaskStatus(run_id, 999_999, 0, "exec_done", now),
            TaskInfo(run_id, 1, "forged", False, "x", now, stdout="/etc/shadow"),
        ]
    )


def hostile_frames(run_id: str, secret: str, count: int, seed: int = 7) -> list[bytes]:
    rng = random.Random(seed)
    genuine = FrameSealer(secret, run_id)  # stands for a worker whose frames were captured
    captured = [
        genuine.seal(encode_batch([TaskStatus(run_id, 10_000 + i, 0, "pending", 1.0)]))
        for i in range(8)
    ]
    other_secret = FrameSealer(new_secret(), run_id)
    other_run = FrameSealer(secret, "another-run")
    payload = forged_rows(run_id)
    makers = [
        lambda: rng.randbytes(rng.randint(0, 300)),  # junk
        lambda: b"T" + rng.randbytes(rng.randint(0, 200)),  # junk with the right first byte
        lambda: (f := rng.choice(captured))[: rng.randint(1, len(f) - 1)],  # truncated
        lambda: rng.choice(captured)[:-1] + b"\x00",  # altered MAC
        lambda: payload,  # forged rows, unsealed
        lambda: other_secret.seal(payload),  # sealed with another secret
        lambda: other_run.seal(payload),  # sealed for another run
        lambda: rng.choice(captured),  # replayed
    ]
    return [rng.choice(makers)() for _ in range(count)]


def test_hostile_frames_inject_nothing_lose_nothing_and_are_counted(tmp_path):
    hub, run_id = started_hub(tmp_path)
    secret = hub._target.secret
    frames = hostile_frames(run_id, secret, HOSTILE_FRAMES)
    # The captured genuine frames reach the hub once, as a worker sent them: their rows are
    # real; every later copy is a replay.
    first_copies = FrameGate(secret, run_id)
    replays_accepted_once = sum(first_copies.open(f) is not None for f in frames)
    assert replays_accepted_once <= 8

    context = zmq.Context()
    attack_done = threading.Event()

    def attack() -> None:
        push = context.socket(zmq.DEALER)
        push.setsockopt(zmq.SNDHWM, 0)
        push.setsockopt(zmq.LINGER, 30_000)
        push.connect(f"tcp://127.0.0.1:{hub.port}")
        for frame in frames:
            push.send(frame, copy=True)
        oversized = context.socket(zmq.DEALER)  # the hub drops this peer without reading it
        oversized.setsockopt(zmq.LINGER, 0)
        oversized.connect(f"tcp://127.0.0.1:{hub.port}")
        oversized.send(b"T" * (MAX_FRAME_BYTES + 1))
        push.close()
        time.sleep(0.5)
        oversized.close()
        attack_done.set()

    attacker = threading.Thread(target=attack, daemon=True)
    attacker.start()
    # Meanwhile the real run goes on: kernel messages, and tries reported over the socket
    # by the real worker-side wrapper and sender.
    worker_target = msgspec.structs.replace(hub._target, hub_pid=-1)
    for task_id in range(REAL_TASKS):
        kernel_launch(hub, run_id, task_id)
        result = wrapper.MonitoredCall(lambda x: x + 1, worker_target, task_id, 0)(task_id)
        assert result == task_id + 1
        hub.send(TaskStatus(run_id, task_id, 0, "exec_done", time.time()))
    for batch_sender in list(wrapper.sender._senders.values()):
        batch_sender.flush()  # what this process's wrapper buffered, sent now
    assert attack_done.wait(300), "the attacker could not send its frames"
    # Every hostile frame except the oversized one (the hub drops that connection unread)
    # and the first copy of each captured frame is refused and counted.
    expected_dropped = HOSTILE_FRAMES - replays_accepted_once
    assert wait_for(lambda: dropped(tmp_path) >= expected_dropped, timeout=300)
    hub.send(WorkflowEnd(run_id, time.time(), "completed", REAL_TASKS, 0))
    hub.close()

    # The oversized frame's connection is dropped unread; ZeroMQ sometimes reports it as a
    # failed connection, which is counted too.
    assert expected_dropped <= hub.messages_dropped <= expected_dropped + 1
    # Each captured frame's one status row went in once, whatever the number of replays.
    assert query(tmp_path, "SELECT count(*) FROM status WHERE task_id >= 10000") == [
        (replays_accepted_once,)
    ]
    real = query(
        tmp_path,
        "SELECT task_id, task_func_name, task_stdout FROM task WHERE run_id = ? "
        "AND task_id < ? ORDER BY task_id",
        run_id,
        REAL_TASKS,
    )
    assert real == [(i, "f", None) for i in range(REAL_TASKS)]
    assert query(
        tmp_path,
        "SELECT count(*) FROM task WHERE task_id = 999999 OR "
        "task_func_name = 'forged' OR task_stdout = '/etc/shadow'",
    ) == [(0,)]
    assert query(tmp_path, "SELECT DISTINCT run_id FROM workflow") == [(run_id,)]
    states = dict(
        query(
            tmp_path,
            "SELECT task_status_name, count(*) FROM status WHERE task_id < ? GROUP BY 1",
            REAL_TASKS,
        )
    )
    assert states == {
        "pending": REAL_TASKS,
        "launched": REAL_TASKS,
        "running": REAL_TASKS,
        "running_ended": REAL_TASKS,
        "exec_done": REAL_TASKS,
    }, states
    tries = query(
        tmp_path,
        "SELECT count(*) FROM try WHERE task_id < ? AND "
        "task_try_time_running IS NOT NULL AND task_try_time_returned IS NOT NULL",
        REAL_TASKS,
    )
    assert tries == [(REAL_TASKS,)]
    completed = query(tmp_path, "SELECT tasks_completed_count FROM workflow")[0][0]
    assert completed == REAL_TASKS
    context.term()


def test_a_run_refuses_frames_sealed_for_another_run(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first, first_run = started_hub(tmp_path / "a")
    second, second_run = started_hub(tmp_path / "b")
    try:
        context = zmq.Context()
        push = context.socket(zmq.DEALER)
        push.setsockopt(zmq.LINGER, 5000)
        push.connect(f"tcp://127.0.0.1:{first.port}")
        # A worker of the second run, pointed at the first run's port (its frames are genuine
        # for its own run, and carry a start of the first run's id).
        sealer = FrameSealer(second._target.secret, second_run)
        push.send(
            sealer.seal(
                encode_batch(
                    [
                        WorkflowStart(
                            first_run,
                            "forged",
                            "1",
                            time.time(),
                            "h",
                            "u",
                            "/",
                            "3",
                            "0",
                            [],
                            os.getpid(),
                            1.0,
                        )
                    ]
                )
            )
        )
        push.close()
        context.term()
        assert wait_for(lambda: dropped(tmp_path / "a") == 1, timeout=60)
    finally:
        first.close()
        second.close()
    assert query(tmp_path / "a", "SELECT workflow_name FROM workflow") == [("test",)]


def test_junk_connections_are_counted_and_logged_once(tmp_path, caplog):
    hub, run_id = started_hub(tmp_path)
    connections = 300
    for index in range(connections):
        with socket.create_connection(("127.0.0.1", hub.port)) as raw:
            raw.sendall(b"GET / HTTP/1.1\r\n\r\n" + bytes([index % 256]) * 64)
    kernel_launch(hub, run_id, 1)
    assert wait_for(lambda: dropped(tmp_path) >= connections, timeout=120)
    hub.send(WorkflowEnd(run_id, time.time(), "completed", 0, 0))
    hub.close()
    # ZeroMQ reports one or two handshake failures per junk connection.
    assert connections <= hub.messages_dropped <= 2 * connections
    assert query(tmp_path, "SELECT count(*) FROM status") == [(2,)]  # the real task's
    log = (tmp_path / "run" / "monitoring.log").read_text()
    assert log.count("failed the ZeroMQ handshake") == 1


@pytest.mark.parametrize("killed_when", ["applied", "spooled"])
def test_a_frame_replayed_after_the_writer_restarts_is_still_refused(
    tmp_path, monkeypatch, killed_when
):
    """The gate's memory of sequence numbers outlives the writer process: frames applied
    before the kill are remembered by the database, frames only spooled by the spool."""
    if killed_when == "spooled":
        # A slow writer: the frames are spooled (accepted) but not yet applied at the kill.
        monkeypatch.setenv(THROTTLE_ENV, "0.5")
    hub, run_id = started_hub(tmp_path)
    sealer = FrameSealer(hub._target.secret, run_id)  # stands for a worker
    frames = [
        sealer.seal(encode_batch([TaskStatus(run_id, 10_000 + i, 0, "pending", 1.0)]))
        for i in range(5)
    ]
    context = zmq.Context()
    push = context.socket(zmq.DEALER)
    push.setsockopt(zmq.LINGER, 5_000)
    push.connect(f"tcp://127.0.0.1:{hub.port}")
    for frame in frames:
        push.send(frame)
    spool = spool_dir(tmp_path / "monitoring.db")
    if killed_when == "applied":
        assert wait_for(lambda: status_rows(tmp_path) == 5, timeout=60)
    else:
        assert wait_for(lambda: max(spooled_sequences(spool).values(), default=0) == 5, 60)
        assert status_rows(tmp_path) < 5  # the kill comes before they are all applied
    first_pid = hub.writer_pid
    assert first_pid is not None
    os.kill(first_pid, signal.SIGKILL)
    assert wait_for(lambda: hub.writer_pid not in (None, first_pid), timeout=60)
    monkeypatch.delenv(THROTTLE_ENV, raising=False)

    for frame in frames:  # the captured frames, sent again to the new writer
        push.send(frame)
    fresh = sealer.seal(encode_batch([TaskStatus(run_id, 10_005, 0, "pending", 1.0)]))
    push.send(fresh)  # the worker goes on: its next frame is accepted
    assert wait_for(lambda: status_rows(tmp_path) == 6, timeout=60)
    hub.send(WorkflowEnd(run_id, time.time(), "completed", 0, 0))
    hub.close()
    push.close()
    context.term()

    rows = query(tmp_path, "SELECT task_id, count(*) FROM status WHERE task_id >= 10000 GROUP BY 1")
    assert rows == [(10_000 + i, 1) for i in range(6)]  # each once: no replay written
    assert dropped(tmp_path) == len(frames)  # every replay counted


def status_rows(folder) -> int:
    return query(folder, "SELECT count(*) FROM status WHERE task_id >= 10000")[0][0]
