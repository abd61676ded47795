"""A worker process that exits normally sends what it still buffers (atexit), even after
pyzmq's own exit hook has stopped the thread that frees zero-copy frames, and waits for the
hub to confirm it (for a bounded time when the hub does not answer)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading

import zmq

from taskscope.monitoring.auth import CONFIRMATION, FrameGate, new_secret, tag_sequence
from taskscope.store.messages import TaskStatus, decode_batch

CHILD = textwrap.dedent(
    """
    import sys
    from taskscope.monitoring import sender
    from taskscope.store.messages import TaskStatus

    port, secret = int(sys.argv[1]), sys.stdin.read()
    s = sender.sender_for("127.0.0.1", port, "run", secret)
    # A large first frame goes zero-copy and starts pyzmq's frame-freeing thread, whose exit
    # hook (registered now, after the sender's) then runs first at exit.
    for i in range(20000):
        s.send(TaskStatus("run", i, 0, "pending", 1.0))
    s.flush()
    # Stop the periodic flusher so that what remains at exit is one frame, large enough to
    # go zero-copy too.
    s._stop.set()
    s._thread.join()
    for i in range(20000):
        s.send(TaskStatus("run", 20000 + i, 0, "pending", 1.0))
    s.send(TaskStatus("run", -1, 0, "exec_done", 2.0))  # still buffered at exit
    """
)


def _serve_as_hub(router, gate, received, stop) -> None:
    """What the hub's receive loop does: open each frame and confirm it."""
    while not stop.is_set():
        if not router.poll(50):
            continue
        connection, frame = router.recv_multipart()
        opened = gate.open_tagged(frame)
        assert opened is not None, "the sender's frame is not sealed for the run"
        tag, payload = opened
        received.extend(decode_batch(payload))
        router.send_multipart([connection, CONFIRMATION.pack(tag_sequence(tag))])


def test_buffered_messages_are_sent_at_normal_exit():
    context = zmq.Context()
    router = context.socket(zmq.ROUTER)
    secret = new_secret()
    gate = FrameGate(secret, "run")
    received: list = []
    stop = threading.Event()
    try:
        port = router.bind_to_random_port("tcp://127.0.0.1")
        hub = threading.Thread(target=_serve_as_hub, args=(router, gate, received, stop))
        hub.start()
        done = subprocess.run(
            [sys.executable, "-c", CHILD, str(port)],
            input=secret,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        stop.set()
        hub.join()
        assert done.returncode == 0, done.stderr
        assert "Traceback" not in done.stderr, done.stderr
        last = [m for m in received if isinstance(m, TaskStatus) and m.task_id == -1]
        assert len(received) == 40001 and len(last) == 1
    finally:
        router.close(linger=0)
        context.term()


UNCONFIRMED_CHILD = textwrap.dedent(
    """
    import sys, time
    from taskscope.monitoring import sender
    from taskscope.store.messages import TaskStatus

    port, secret = int(sys.argv[1]), sys.stdin.read()
    sender.CONFIRM_PATIENCE_S = 1.0
    s = sender.sender_for("127.0.0.1", port, "run", secret)
    s.send(TaskStatus("run", 1, 0, "pending", 1.0))
    s.flush()
    started = time.monotonic()
    sender.close_all()
    print(s.unconfirmed, round(time.monotonic() - started, 1))
    """
)


def test_a_hub_that_never_confirms_delays_exit_by_the_patience_only():
    """A hub that reads but never answers (an older writer, or one wedged) costs a worker's
    exit CONFIRM_PATIENCE_S, not for ever; the frame was still delivered."""
    context = zmq.Context()
    router = context.socket(zmq.ROUTER)
    try:
        port = router.bind_to_random_port("tcp://127.0.0.1")
        done = subprocess.run(
            [sys.executable, "-c", UNCONFIRMED_CHILD, str(port)],
            input=new_secret(),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        unconfirmed, waited = done.stdout.split()
        assert unconfirmed == "1"
        assert 0.9 <= float(waited) < 10
        assert "did not confirm the last 1 frames" in done.stderr
        assert router.poll(1000), "the frame was not delivered"
    finally:
        router.close(linger=0)
        context.term()
