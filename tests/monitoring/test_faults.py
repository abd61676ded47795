"""Junk on the hub port, a failing writer and a killed workflow process."""

import os
import re
import resource
import signal
import socket
import subprocess
import sys
import textwrap
import time
import warnings

import msgspec
import pytest
import zmq
from monhelp import kernel_launch, nap, query, read_only, started_hub, wait_for

from taskscope.monitoring import MonitoringError, MonitoringWarning
from taskscope.monitoring.auth import FrameSealer
from taskscope.monitoring.messages import TaskStatus, WorkflowEnd, encode_batch


def test_junk_on_the_hub_port_is_counted_and_recording_goes_on(tmp_path):
    hub, run_id = started_hub(tmp_path)
    context = zmq.Context()
    push = context.socket(zmq.DEALER)
    push.setsockopt(zmq.LINGER, 1000)
    push.connect(f"tcp://127.0.0.1:{hub.port}")
    push.send(b"\x00\xffjunk")  # not msgpack at all
    push.send(msgspec.msgpack.encode([["status", "run", "not-an-int"]]))  # wrong types
    push.send(msgspec.msgpack.encode({"kind": "pickle?"}))  # msgpack, wrong shape
    sealer = FrameSealer(hub._target.secret, run_id)  # what a worker of the run sends
    push.send(encode_batch([TaskStatus(run_id, 7, 0, "pending", time.time())]))  # unsealed
    push.send(sealer.seal(b"\x00\xffjunk"))  # sealed, not msgpack
    push.send(sealer.seal(encode_batch([TaskStatus(run_id, 7, 0, "pending", time.time())])))
    raw = socket.create_connection(("127.0.0.1", hub.port))
    raw.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" + os.urandom(512))  # not ZeroMQ
    raw.close()
    push.close()
    context.term()
    assert wait_for(lambda: query(tmp_path, "SELECT count(*) FROM status") == [(1,)])
    kernel_launch(hub, run_id, 8)
    assert wait_for(
        lambda: query(tmp_path, "SELECT messages_dropped FROM taskscope_run")[0][0] >= 5
    )
    hub.send(WorkflowEnd(run_id, time.time(), "completed", 0, 0))
    hub.close()
    assert hub.messages_dropped >= 5
    assert query(tmp_path, "SELECT count(*) FROM status") == [(3,)]
    dropped = query(tmp_path, "SELECT messages_dropped FROM taskscope_run")[0][0]
    assert dropped >= 5
    assert query(tmp_path, "SELECT status FROM taskscope_run") == [("completed",)]


def test_writer_failure_is_reported_to_the_user(tmp_path):
    hub, run_id = started_hub(tmp_path)
    kernel_launch(hub, run_id, 0)
    assert wait_for(lambda: query(tmp_path, "SELECT count(*) FROM status") == [(2,)])
    # The disk is full, as far as the writer process can tell: no file may grow any more.
    wal = tmp_path / "monitoring.db-wal"
    size = max(wal.stat().st_size, (tmp_path / "monitoring.db").stat().st_size)
    resource.prlimit(hub.writer_pid, resource.RLIMIT_FSIZE, (size, size))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        deadline = time.monotonic() + 30
        task_id = 1
        while not caught and time.monotonic() < deadline:
            kernel_launch(hub, run_id, task_id)
            task_id += 1
            time.sleep(0.001)
    assert len(caught) == 1 and caught[0].category is MonitoringWarning
    assert re.search("full|disk|I/O|too large", str(caught[0].message))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        hub.send(TaskStatus(run_id, 1, 0, "exec_done", time.time()))  # warned only once
    with pytest.raises(MonitoringError, match="stopped recording"):
        hub.close()
    conn = read_only(tmp_path / "monitoring.db")
    assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    log = (tmp_path / "run" / "monitoring.log").read_text()
    assert "cannot rollback" not in log  # one failure, reported once, no follow-on traceback


KILLED_SCRIPT = """
import os, sys, time, uuid
sys.path.insert(0, {helpers!r})
from monhelp import kernel_launch, started_hub, nap
from pathlib import Path
from concurrent.futures import ThreadPoolExecutor
from taskscope.monitoring.messages import TaskStatus

hub, run_id = started_hub(Path({tmp!r}), resource_monitoring_interval=0.2)
pool = ThreadPoolExecutor(2)
task_id = 0
while True:
    kernel_launch(hub, run_id, task_id)
    call = hub.wrap(nap, run_id=run_id, task_id=task_id, try_id=0, executor_label="x")
    pool.submit(call, 0.05).result()
    hub.send(TaskStatus(run_id, task_id, 0, "exec_done", time.time()))
    with open({progress!r} + ".tmp", "w") as f:  # replaced whole: never read half-written
        f.write(str(task_id))
    os.replace({progress!r} + ".tmp", {progress!r})
    task_id += 1
"""


def test_sigkill_leaves_a_readable_database_up_to_about_the_last_second(tmp_path):
    progress = tmp_path / "progress"
    script = KILLED_SCRIPT.format(
        helpers=os.path.dirname(__file__), tmp=str(tmp_path), progress=str(progress)
    )
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(script)])
    try:
        assert wait_for(lambda: progress.exists() and int(progress.read_text() or 0) >= 20, 20)
        time.sleep(1.5)
        done_before_kill = int(progress.read_text())
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    killed_at = time.time()
    conn = read_only(tmp_path / "monitoring.db")
    assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    recorded = conn.execute(
        "SELECT count(*) FROM status WHERE task_status_name = 'exec_done'"
    ).fetchone()[0]
    # Tasks take >= 50 ms each, so one second holds at most ~20 of them.
    assert recorded >= done_before_kill - 25
    status, last_beat, interval = conn.execute(
        "SELECT status, last_heartbeat, heartbeat_interval FROM taskscope_run"
    ).fetchone()
    assert status == "running"
    assert interval > 0
    beat = time.mktime(time.strptime(last_beat[:19], "%Y-%m-%d %H:%M:%S")) - time.timezone
    assert beat <= killed_at  # and it will not move again: the run reads as lost later
    assert conn.execute("SELECT time_completed FROM workflow").fetchone() == (None,)
    assert conn.execute("SELECT tasks_completed_count FROM workflow").fetchone()[0] >= (
        done_before_kill - 25
    )


def test_close_is_prompt_after_the_last_result(tmp_path, spawn_pool):
    hub, run_id = started_hub(tmp_path)
    kernel_launch(hub, run_id, 0)
    call = hub.wrap(nap, run_id=run_id, task_id=0, try_id=0, executor_label="x")
    spawn_pool.submit(call, 0.01).result(timeout=30)
    hub.send(WorkflowEnd(run_id, time.time(), "completed", 1, 0))
    hub.close()
    # Everything the worker sent before its result is in the database after close().
    assert query(
        tmp_path, "SELECT count(*) FROM status WHERE task_status_name = 'running_ended'"
    ) == [(1,)]
    assert query(tmp_path, "SELECT count(*) FROM resource") == [(1,)]
