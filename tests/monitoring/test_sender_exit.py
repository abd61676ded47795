"""A worker process that exits normally sends what it still buffers (atexit), even after
pyzmq's own exit hook has stopped the thread that frees zero-copy frames."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import zmq

from taskscope.monitoring.auth import FrameGate, new_secret
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


def test_buffered_messages_are_sent_at_normal_exit():
    context = zmq.Context()
    pull = context.socket(zmq.PULL)
    secret = new_secret()
    gate = FrameGate(secret, "run")
    try:
        port = pull.bind_to_random_port("tcp://127.0.0.1")
        done = subprocess.run(
            [sys.executable, "-c", CHILD, str(port)],
            input=secret,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        assert "Traceback" not in done.stderr, done.stderr
        received = []
        while pull.poll(2000):
            payload = gate.open(pull.recv())
            assert payload is not None, "the sender's frame is not sealed for the run"
            received.extend(decode_batch(payload))
        last = [m for m in received if isinstance(m, TaskStatus) and m.task_id == -1]
        assert len(received) == 40001 and len(last) == 1
    finally:
        pull.close(linger=0)
        context.term()
