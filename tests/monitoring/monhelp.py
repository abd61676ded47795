"""Helpers for monitoring tests: a started hub, kernel-side messages, test task bodies."""

from __future__ import annotations

import os
import sqlite3
import time
import uuid

from taskscope.monitoring import MonitoringHub
from taskscope.monitoring.messages import TaskInfo, TaskStatus, TryInfo, WorkflowStart


def started_hub(tmp_path, **kwargs) -> tuple[MonitoringHub, str]:
    kwargs.setdefault("logging_endpoint", f"sqlite:///{tmp_path}/monitoring.db")
    hub = MonitoringHub(**kwargs)
    run_id = str(uuid.uuid4())
    hub.start(run_id, str(tmp_path / "run"))
    hub.send(
        WorkflowStart(
            run_id,
            "test",
            "1",
            time.time(),
            "host",
            "user",
            str(tmp_path),
            "3.11",
            "0.1",
            ["x"],
            os.getpid(),
            hub.heartbeat_interval,
        )
    )
    return hub, run_id


def kernel_launch(hub: MonitoringHub, run_id: str, task_id: int, try_id: int = 0) -> None:
    now = time.time()
    hub.send(TaskInfo(run_id, task_id, "f", False, "x", now))
    hub.send(TaskStatus(run_id, task_id, try_id, "pending", now))
    launched = max(time.time(), now + 1e-5)  # after pending, before the worker starts
    hub.send(TryInfo(run_id, task_id, try_id, executor="x", time_launched=launched))
    hub.send(TaskStatus(run_id, task_id, try_id, "launched", launched))


def query(tmp_path, sql: str, *args):
    conn = sqlite3.connect(f"file:{tmp_path}/monitoring.db?mode=ro", uri=True)
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()


def wait_for(predicate, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return True
        except (IndexError, sqlite3.OperationalError):  # the row or file is not there yet
            pass
        time.sleep(0.05)
    return False


# -- task bodies (module level so spawned processes can import them) -------------------


def burn_cpu(seconds: float) -> int:
    """Spin in pure Python (user time, no syscalls) for about ``seconds`` of CPU."""
    start = time.thread_time()
    x = 0
    while time.thread_time() - start < seconds:
        for i in range(20000):
            x += i * i
    return os.getpid()


def hold_memory(megabytes: int, seconds: float = 0.3) -> int:
    block = bytearray(megabytes * 1024 * 1024)
    for i in range(0, len(block), 4096):  # touch every page so it is resident
        block[i] = 1
    time.sleep(seconds)
    del block
    return os.getpid()


def nap(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


def fail(message: str) -> None:
    raise ValueError(message)


def shell(command: str) -> int:
    import subprocess

    return subprocess.run(command, shell=True, check=False).returncode
