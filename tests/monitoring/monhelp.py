"""Helpers for monitoring tests: a started hub, an HTEX run's Config, kernel-side messages,
reading the database, test task bodies."""

from __future__ import annotations

import os
import sqlite3
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

from taskscope.monitoring import MonitoringHub
from taskscope.monitoring.messages import TaskInfo, TaskStatus, TryInfo, WorkflowStart

if TYPE_CHECKING:
    from taskscope.config import Config


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


def htex_config(tmp_path: Path, db: Path | None = None, *, retries: int = 0) -> Config:
    """A run on one local HTEX block of two workers, recorded to `db` (by default the
    monitoring.db in `tmp_path`, where query() reads) without resource sampling, its run
    directory (logs, HTEX's files) in `tmp_path`: the run the fault and durability tests
    kill, stop, freeze or starve."""
    # Imported here: the task bodies below are imported by spawned processes, which need no
    # executor or kernel.
    from taskscope.config import Config
    from taskscope.executors import HighThroughputExecutor

    db = tmp_path / "monitoring.db" if db is None else db
    return Config(
        retries=retries,
        executors=[HighThroughputExecutor(label="htex", max_workers_per_node=2)],
        monitoring=MonitoringHub(
            logging_endpoint=f"sqlite:///{db}", resource_monitoring_interval=0
        ),
        run_dir=str(tmp_path / "runinfo"),
        strategy="none",
    )


def kernel_launch(hub: MonitoringHub, run_id: str, task_id: int, try_id: int = 0) -> None:
    now = time.time()
    hub.send(TaskInfo(run_id, task_id, "f", False, "x", now))
    hub.send(TaskStatus(run_id, task_id, try_id, "pending", now))
    launched = max(time.time(), now + 1e-5)  # after pending, before the worker starts
    hub.send(TryInfo(run_id, task_id, try_id, executor="x", time_launched=launched))
    hub.send(TaskStatus(run_id, task_id, try_id, "launched", launched))


def read_only(db: Path) -> sqlite3.Connection:
    """A connection that can only read `db`: a test checks the writer's rows, never adds any."""
    return sqlite3.connect(f"file:{db}?mode=ro", uri=True)


def rows(db: Path, sql: str, *args) -> list[tuple]:
    """The rows of `sql` (with `args`) in the database at `db`, read on a connection of
    their own."""
    conn = read_only(db)
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()


def query(tmp_path: Path, sql: str, *args) -> list[tuple]:
    """rows() of the database a hub started by started_hub() (or htex_config()) writes."""
    return rows(tmp_path / "monitoring.db", sql, *args)


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
