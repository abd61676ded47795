"""Figures from the worker's clock, on a real run of many short tasks (HTEX, two workers).

The truth these tests compare against: a worker runs one try at a time, so workers busy can
never exceed the workers the executor started; a task that sleeps 0.2 s runs at least 0.2 s
and, on a worker that does nothing else meanwhile, not much longer."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

from taskscope.store import query, worker_query
from taskscope.store.readonly import open_readonly

SLEEP_S = 0.2
# Text timestamps are differenced through SQLite's julianday (a double counting days), which
# resolves about 40 µs: a 0.2 s sleep may read a few µs short.
CLOCK_SLACK = 1e-3


def without_worker_tables(db: Path, target: Path) -> Path:
    """A copy as a writer without the worker tables would leave it (or as Parsl writes it):
    readers must take worker times from the status history's running/running_ended rows."""
    shutil.copy(db, target)
    conn = sqlite3.connect(target)
    try:
        for table in ("taskscope_try_run", "taskscope_occupancy"):
            conn.execute(f"DROP TABLE {table}")
        conn.commit()
    finally:
        conn.close()
    return target


def check_busy_within_capacity(db: Path, run_id: str) -> None:
    conn = open_readonly(db)
    try:
        usage = query.run_usage(conn, run_id, parts=("workers",))
    finally:
        conn.close()
    assert usage is not None
    assert usage.capacity.workers == 2
    assert max(usage.workers_busy) > 0
    for value in usage.workers_busy:
        assert value <= usage.capacity.workers + 1e-6
    # The kernel's view stays available: launched -> returned covers every busy moment.
    assert sum(usage.in_flight) >= sum(usage.workers_busy) - 1e-6


def check_sleep_run_time(db: Path, run_id: str) -> None:
    conn = open_readonly(db)
    try:
        stats = {a.app: a for a in query.app_summary(conn, run_id)}
    finally:
        conn.close()
    assert SLEEP_S - CLOCK_SLACK <= stats["sleepy"].mean_exec_s < SLEEP_S + 0.1
    # A no-op's run time is what it takes to call it, not the batch's trip back.
    assert stats["noop"].mean_exec_s < 0.01


def test_busy_never_exceeds_capacity(htex_run) -> None:
    check_busy_within_capacity(*htex_run)


def test_busy_from_the_rollup_at_scale(htex_run, monkeypatch) -> None:
    monkeypatch.setattr(worker_query, "EXACT_TRIES", 0)  # as on a run of 10^6 tries
    check_busy_within_capacity(*htex_run)


def test_busy_from_the_status_history(htex_run, tmp_path) -> None:
    db, run_id = htex_run
    check_busy_within_capacity(without_worker_tables(db, tmp_path / "copy.db"), run_id)


def test_sleep_task_run_time(htex_run) -> None:
    check_sleep_run_time(*htex_run)


def test_sleep_task_run_time_from_the_status_history(htex_run, tmp_path) -> None:
    db, run_id = htex_run
    check_sleep_run_time(without_worker_tables(db, tmp_path / "copy.db"), run_id)


def test_each_try_names_its_worker(htex_run) -> None:
    db, run_id = htex_run
    conn = open_readonly(db)
    try:
        tries, named = conn.execute(
            "SELECT COUNT(*), COUNT(worker) FROM taskscope_try_run WHERE run_id = ?", (run_id,)
        ).fetchone()
        (task_id,) = conn.execute(
            "SELECT task_id FROM task WHERE run_id = ? AND task_func_name = 'sleepy' LIMIT 1",
            (run_id,),
        ).fetchone()
        detail = query.task_detail(conn, run_id, task_id)
    finally:
        conn.close()
    assert tries >= 1506 and named == tries
    assert detail is not None
    (attempt,) = detail.tries
    assert attempt.worker is not None and attempt.worker.startswith("htex-")
    assert SLEEP_S - CLOCK_SLACK <= attempt.run_s < SLEEP_S + 0.1
    assert attempt.return_delay_s is not None and attempt.return_delay_s >= 0
