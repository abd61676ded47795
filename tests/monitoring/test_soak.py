"""Soak: long monitored runs with a reader watching; nothing may be lost (run with `make soak`)."""

from __future__ import annotations

import sqlite3
import threading

import pytest

import taskscope
from taskscope import python_app
from taskscope.config import Config
from taskscope.executors import HighThroughputExecutor
from taskscope.monitoring.monitoring import MonitoringHub

pytestmark = [pytest.mark.soak, pytest.mark.timeout(900)]

TASKS = 50_000


@python_app
def noop(i):
    return i


@python_app
def add(a, b):
    return a + b


def test_a_long_burst_with_a_reader_holding_snapshots_loses_nothing(tmp_path):
    path = tmp_path / "monitoring.db"
    config = Config(
        executors=[HighThroughputExecutor(label="htex", max_workers_per_node=2)],
        monitoring=MonitoringHub(
            logging_endpoint=f"sqlite:///{path}", resource_monitoring_interval=1
        ),
        run_dir=str(tmp_path / "runinfo"),
        strategy="none",
    )
    stop = threading.Event()
    seen: list[int] = []

    def reader() -> None:
        # Holds each read transaction for a while, as a dashboard or notebook might.
        while not stop.is_set():
            try:
                conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
                conn.execute("BEGIN")
                seen.append(conn.execute("SELECT count(*) FROM status").fetchone()[0])
                stop.wait(0.5)
                conn.rollback()
                conn.close()
            except sqlite3.OperationalError:  # the file may not exist yet
                stop.wait(0.1)

    watcher = threading.Thread(target=reader)
    watcher.start()
    try:
        with taskscope.load(config):
            firsts = [noop(i) for i in range(TASKS)]
            pairs = [add(firsts[i], firsts[i + 1]) for i in range(0, 1000, 2)]
            assert sum(f.result() for f in pairs) == sum(range(1000))
            assert sum(f.result() for f in firsts) == sum(range(TASKS))
    finally:
        stop.set()
        watcher.join()

    total = TASKS + len(pairs)
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert conn.execute("SELECT count(*) FROM task").fetchone() == (total,)
    assert conn.execute("SELECT count(*) FROM try").fetchone() == (total,)
    # pending, launched, running, running_ended, exec_done for every task.
    assert conn.execute("SELECT count(*) FROM status").fetchone() == (5 * total,)
    assert conn.execute("SELECT count(DISTINCT task_id) FROM resource").fetchone() == (total,)
    assert conn.execute(
        "SELECT state, count(*) FROM taskscope_task_state GROUP BY state"
    ).fetchall() == [("exec_done", total)]
    assert conn.execute(
        "SELECT tasks_completed_count, tasks_failed_count FROM workflow"
    ).fetchone() == (total, 0)
    assert conn.execute("SELECT status FROM taskscope_run").fetchone() == ("completed",)
    assert seen and max(seen) > 0  # the reader saw rows while the run went on


@python_app
def gather(*values):
    return len(values)


def test_a_hundred_thousand_tasks_lose_no_row_in_any_table(tmp_path):
    """The issue-10 workload at 10^5: no-op tasks in chunks of 1,000, each gathered by one
    task, HTEX with 2 workers, resource_monitoring_interval=1 (bench/soak.py runs it at 10^6
    with figures). Every table holds every row, once."""
    tasks = 100_000
    path = tmp_path / "monitoring.db"
    config = Config(
        executors=[HighThroughputExecutor(label="htex", max_workers_per_node=2)],
        monitoring=MonitoringHub(
            logging_endpoint=f"sqlite:///{path}", resource_monitoring_interval=1
        ),
        run_dir=str(tmp_path / "runinfo"),
        strategy="none",
    )
    with taskscope.load(config):
        gathers = [
            gather(*[noop(i) for i in range(first, first + 1000)])
            for first in range(0, tasks, 1000)
        ]
        assert sum(f.result() for f in gathers) == tasks
    total = tasks + len(gathers)
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    one = lambda sql: conn.execute(sql).fetchone()  # noqa: E731
    assert one("SELECT count(*) FROM task") == (total,)
    assert one("SELECT count(*) FROM try") == (total,)
    for state in ("pending", "launched", "running", "running_ended", "exec_done"):
        assert one(f"SELECT count(*) FROM status WHERE task_status_name = '{state}'") == (total,), (
            state
        )
    assert one("SELECT count(*) FROM status") == (5 * total,)
    assert one("SELECT count(*) FROM (SELECT DISTINCT task_id, try_id FROM resource)") == (total,)
    assert one("SELECT count(*) FROM taskscope_task_state WHERE state = 'exec_done'") == (total,)
    assert one("SELECT tasks_completed_count, tasks_failed_count FROM workflow") == (total, 0)
    assert one("SELECT status, messages_dropped FROM taskscope_run") == ("completed", 0)
    conn.close()
    assert not list(path.parent.glob("monitoring.db.spool/*.seg"))  # nothing left unwritten
