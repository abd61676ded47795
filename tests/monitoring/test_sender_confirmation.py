"""A worker's sender keeps each frame until the hub confirms it is spooled, and sends every
unconfirmed frame again to a hub that comes back (a writer process killed and restarted)."""

from __future__ import annotations

import time

import zmq
from monhelp import query, started_hub, wait_for

from taskscope.monitoring import sender as sender_module
from taskscope.monitoring.auth import (
    CONFIRMATION,
    FrameGate,
    FrameSealer,
    new_secret,
    tag_sequence,
)
from taskscope.monitoring.messages import TaskStatus
from taskscope.monitoring.sender import BatchSender
from taskscope.store.messages import decode_batch, encode_batch


def receive(hub: zmq.Socket, gate: FrameGate, timeout_ms: int = 3000):
    """(connection, sequence, task ids) of the next frame on a stand-in hub, or None."""
    if not hub.poll(timeout_ms):
        return None
    connection, frame = hub.recv_multipart()
    opened = gate.open_tagged(frame)
    assert opened is not None, "a frame not sealed for the run"
    tag, payload = opened
    return connection, tag_sequence(tag), [m.task_id for m in decode_batch(payload)]


def bind(socket: zmq.Socket, port: int) -> bool:
    try:
        socket.bind(f"tcp://127.0.0.1:{port}")
    except zmq.ZMQError:
        return False
    return True


def test_every_unconfirmed_frame_is_sent_again_to_a_hub_that_comes_back():
    secret = new_secret()
    context = zmq.Context()
    first = context.socket(zmq.ROUTER)
    port = first.bind_to_random_port("tcp://127.0.0.1")
    sender = BatchSender("127.0.0.1", port, "run", secret)
    second = None
    try:
        for task_id in range(3):
            sender.send(TaskStatus("run", task_id, 0, "pending", 1.0))
            sender.flush()
        gate = FrameGate(secret, "run")
        frames = [receive(first, gate) for _ in range(3)]
        assert [f[2] for f in frames if f] == [[0], [1], [2]]
        connection, sequence, _ = frames[0]
        # The hub spooled the first frame only; it read the other two, then died with them.
        first.send_multipart([connection, CONFIRMATION.pack(sequence)])
        assert wait_for(lambda: sender.unconfirmed == 2, timeout=5)
        first.close(linger=0)
        second = context.socket(zmq.ROUTER)
        # (ZeroMQ releases the closed socket's port in its I/O thread, a moment later)
        assert wait_for(lambda: bind(second, port), timeout=5)
        gate = FrameGate(secret, "run")  # a new writer: it has seen none of these sequences
        again = [receive(second, gate, 10_000) for _ in range(2)]
        assert [f[2] for f in again if f] == [[1], [2]]
        assert receive(second, gate, 500) is None, "a confirmed frame was sent again"
        assert sender.resent == 2
        connection, sequence, _ = again[-1]
        second.send_multipart([connection, CONFIRMATION.pack(sequence)])  # cumulative
        assert wait_for(lambda: sender.unconfirmed == 0, timeout=5)
    finally:
        sender.close()
        first.close(linger=0)
        if second is not None:
            second.close(linger=0)
        context.term()


def test_the_hub_confirms_what_it_spooled(tmp_path):
    hub, run_id = started_hub(tmp_path)
    target = hub._target
    sender = BatchSender(target.address, target.port, run_id, target.secret)
    try:
        for task_id in range(50):
            sender.send(TaskStatus(run_id, task_id, 0, "running", time.time()))
            sender.flush()
        assert wait_for(lambda: sender.unconfirmed == 0, timeout=10)
    finally:
        sender.close()
    hub.close()
    assert query(tmp_path, "SELECT count(*) FROM status WHERE task_status_name = 'running'") == [
        (50,)
    ]


def test_close_asks_a_live_worker_for_what_it_still_holds(tmp_path, monkeypatch):
    """A worker that outlives the run (a pool, a Dask worker) holds its last messages for a
    flush period, longer on a loaded machine: close waits for its answer, not for a guessed
    quiet period (a 1 s flush period here, ten times the final quiet of the hub)."""
    hub, run_id = started_hub(tmp_path)
    target = hub._target
    sender = BatchSender(target.address, target.port, run_id, target.secret)
    try:
        sender.send(TaskStatus(run_id, 1, 0, "running", time.time()))
        sender.flush()  # connected, and known to the hub as a peer
        assert wait_for(lambda: sender.unconfirmed == 0, timeout=10)
        monkeypatch.setattr(sender_module, "FLUSH_PERIOD", 1.0)
        time.sleep(0.1)  # the flusher is now in its long wait
        sender.send(TaskStatus(run_id, 2, 0, "running", time.time()))  # held in the buffer
        hub.close()
    finally:
        sender.close()
    assert query(tmp_path, "SELECT task_id FROM status ORDER BY task_id") == [(1,), (2,)]


def test_close_gives_up_on_a_connected_worker_that_never_answers(tmp_path):
    """A stopped worker (or one behind a dead network) cannot hold the close for ever."""
    hub, run_id = started_hub(tmp_path)
    target = hub._target
    sealer = FrameSealer(target.secret, run_id)
    context = zmq.Context()
    silent = context.socket(zmq.DEALER)  # sends a genuine frame, then never reads again
    try:
        silent.connect(f"tcp://{target.address}:{target.port}")
        _, frame = sealer.seal_numbered(encode_batch([TaskStatus(run_id, 1, 0, "running", 1.0)]))
        silent.send(frame)
        assert wait_for(lambda: query(tmp_path, "SELECT count(*) FROM status") == [(1,)], 10)
        hub.close()  # returns, after the patience for an answer
        assert query(tmp_path, "SELECT task_id FROM status") == [(1,)]
    finally:
        silent.close(linger=0)
        context.term()
