"""The writer turns every message into rows, reconciles arrival order and keeps counts."""

import sqlite3
import threading

from storehelp import workflow_start

from taskscope.store.database import open_for_writing
from taskscope.store.messages import (
    BlockInfo,
    NodeInfo,
    ResourceSample,
    TaskInfo,
    TaskStatus,
    TryFailure,
    TryInfo,
    TryRun,
    WorkflowEnd,
)
from taskscope.store.writer import DatabaseWriter

T0 = 1_700_000_000.25  # 2023-11-14 22:13:20.250000 UTC


def sample(run_id, task_id, try_id, t, **kw):
    values = {
        "interval": 1.0,
        "pid": 42,
        "memory_percent": 1.5,
        "children_count": 1,
        "time_user": 2.0,
        "time_system": 0.5,
        "memory_virtual": 1e9,
        "memory_resident": 5e8,
        "disk_read": 10.0,
        "disk_write": 20.0,
        "status": "running",
        "cpu_num": "1",
        "ctx_switches_voluntary": 3.0,
        "ctx_switches_involuntary": 4.0,
    }
    values.update(kw)
    return ResourceSample(run_id, task_id, try_id, t, **values)


def rows(writer, sql, *args):
    return writer.conn.execute(sql, args).fetchall()


def test_every_message_type_round_trips(writer, run_id):
    writer.write(
        [
            workflow_start(run_id, T0),
            TaskInfo(
                run_id,
                1,
                "f",
                True,
                "htex",
                T0,
                depends=[0],
                hashsum="abc",
                inputs="[1]",
                outputs="[]",
                stdin="in",
                stdout="out",
                stderr="err",
            ),
            TaskStatus(run_id, 1, 0, "pending", T0 + 1),
            TryInfo(run_id, 1, 0, executor="htex", time_launched=T0 + 2),
            TaskStatus(run_id, 1, 0, "launched", T0 + 2),
            TryRun(run_id, 1, 0, "node1", "0", T0 + 3),
            sample(run_id, 1, 0, T0 + 4),
            TryFailure(run_id, 1, 0, "ValueError", "bad", "Traceback...", exit_code=3),
            TaskStatus(run_id, 1, 0, "failed", T0 + 5),
            NodeInfo(run_id, "node1", "pool-1", "0", 2, 8 << 30, True, 2, "3.11.7", T0 + 1),
            BlockInfo(run_id, "htex", "0", "RUNNING", T0 + 1, job_id="77"),
            TaskInfo(
                run_id, 1, "f", True, "htex", T0, time_returned=T0 + 5, fail_count=1, fail_cost=1.0
            ),
            WorkflowEnd(run_id, T0 + 7, "failed", 0, 1),
        ]
    )
    writer.commit()
    assert rows(
        writer,
        "SELECT workflow_name, time_began, time_completed, host, user, rundir, "
        "tasks_completed_count, tasks_failed_count FROM workflow",
    ) == [
        (
            "wf",
            "2023-11-14 22:13:20.250000",
            "2023-11-14 22:13:27.250000",
            "host",
            "user",
            "/tmp/run",
            0,
            1,
        )
    ]
    assert rows(
        writer,
        "SELECT task_depends, task_func_name, task_memoize, task_hashsum, "
        "task_inputs, task_stdout, task_time_returned, task_fail_count FROM task",
    ) == [("0", "f", "1", "abc", "[1]", "out", "2023-11-14 22:13:25.250000", 1)]
    assert rows(
        writer,
        "SELECT block_id, hostname, task_executor, task_try_time_launched, "
        "task_try_time_running FROM try",
    ) == [("0", "node1", "htex", "2023-11-14 22:13:22.250000", "2023-11-14 22:13:23.250000")]
    assert [
        r[0] for r in rows(writer, "SELECT task_status_name FROM status ORDER BY timestamp")
    ] == ["pending", "launched", "running", "failed"]
    assert rows(
        writer,
        "SELECT psutil_process_time_user, psutil_process_memory_resident, "
        "psutil_process_pid FROM resource",
    ) == [(2.0, 5e8, 42)]
    assert rows(writer, "SELECT exception_type, message, exit_code FROM taskscope_try_failure") == [
        ("ValueError", "bad", 3)
    ]
    assert rows(writer, "SELECT hostname, cpu_count, active, worker_count FROM node") == [
        ("node1", 2, 1, 2)
    ]
    assert rows(writer, "SELECT status, job_id FROM block") == [("RUNNING", "77")]
    assert rows(writer, "SELECT status, last_heartbeat FROM taskscope_run") == [
        ("failed", "2023-11-14 22:13:27.250000")
    ]


def test_worker_messages_before_the_kernels_are_reconciled(writer, run_id):
    writer.write([workflow_start(run_id, T0)])
    # The worker's running and host info arrive before the kernel's launched TryInfo.
    writer.write(
        [
            TryRun(run_id, 5, 0, "w1", "3", T0 + 2, time_ended=T0 + 3),
        ]
    )
    writer.commit()
    # Until the kernel names it, the executor is '' (task_executor is NOT NULL).
    assert rows(writer, "SELECT task_executor FROM try") == [("",)]
    writer.write(
        [
            TryInfo(run_id, 5, 0, executor="htex", time_launched=T0 + 1),
            TaskStatus(run_id, 5, 0, "launched", T0 + 1),
            TryInfo(run_id, 5, 0, time_returned=T0 + 4),
            TaskStatus(run_id, 5, 0, "exec_done", T0 + 4),
        ]
    )
    writer.commit()
    assert rows(
        writer,
        "SELECT hostname, block_id, task_executor, task_try_time_launched, "
        "task_try_time_running, task_try_time_returned FROM try",
    ) == [
        (
            "w1",
            "3",
            "htex",
            "2023-11-14 22:13:21.250000",
            "2023-11-14 22:13:22.250000",
            "2023-11-14 22:13:24.250000",
        )
    ]
    states = [r[0] for r in rows(writer, "SELECT task_status_name FROM status ORDER BY timestamp")]
    assert states == ["launched", "running", "running_ended", "exec_done"]


def test_kernel_return_time_is_kept_when_the_worker_reports_later(writer, run_id):
    writer.write(
        [workflow_start(run_id, T0), TryInfo(run_id, 1, 0, executor="x", time_returned=T0 + 9)]
    )
    writer.write([TryRun(run_id, 1, 0, "w", None, T0 + 7, time_ended=T0 + 8)])
    writer.commit()
    assert rows(writer, "SELECT task_try_time_returned FROM try") == [
        ("2023-11-14 22:13:29.250000",)
    ]


def _task_and_try_rows(path, messages, cuts):
    """The task and try rows after ``messages`` are written in batches ending at ``cuts``."""
    writer = DatabaseWriter(open_for_writing(path))
    start = 0
    for end in [*cuts, len(messages)]:
        writer.write(messages[start:end])
        start = end
    writer.close(analyze=False)
    conn = sqlite3.connect(path)
    found = [conn.execute(f"SELECT * FROM {t}").fetchall() for t in ("task", "try")]
    conn.close()
    return found


def test_rows_do_not_depend_on_where_the_batches_are_cut(tmp_path, run_id):
    messages = [
        workflow_start(run_id, T0),
        TryRun(run_id, 1, 0, "w1", None, T0 + 2, time_ended=T0 + 3),
        TaskInfo(run_id, 1, "f", True, "htex", T0, hashsum="h1", state="pending", timestamp=T0),
        TryInfo(run_id, 1, 0, executor="htex", block_id="0", time_launched=T0 + 1),
        TryRun(run_id, 1, 0, "w2", "1", T0 + 2.5, time_ended=T0 + 3.5),
        TryInfo(
            run_id,
            1,
            0,
            time_returned=T0 + 4,
            fail_history="e",
            state="exec_done",
            timestamp=T0 + 4,
        ),
        # A later row of the task may disagree on what its first row fixed (memoize).
        TaskInfo(run_id, 1, "f", False, "htex", T0 + 1, time_returned=T0 + 4, fail_count=1),
    ]
    whole = _task_and_try_rows(tmp_path / "whole.db", messages, [])
    assert whole[1] == [
        (
            0,
            1,
            run_id,
            "1",
            "w2",
            "htex",
            "2023-11-14 22:13:21.250000",
            "2023-11-14 22:13:22.250000",
            "2023-11-14 22:13:24.250000",
            "e",
            None,
        )
    ]
    assert whole[0][0][4] == "1"  # memoize: the first row's
    for n in range(1, len(messages)):
        assert _task_and_try_rows(tmp_path / f"{n}.db", messages, [n]) == whole, n
    singles = list(range(1, len(messages)))
    assert _task_and_try_rows(tmp_path / "singles.db", messages, singles) == whole


def test_retried_tries_stay_apart(writer, run_id):
    msgs = [workflow_start(run_id, T0)]
    for try_id in (0, 1):
        base = T0 + 10 * try_id
        msgs += [
            TryInfo(run_id, 1, try_id, executor="x", time_launched=base),
            sample(run_id, 1, try_id, base + 1, time_user=1.0 + try_id),
            TaskStatus(
                run_id, 1, try_id, "fail_retryable" if try_id == 0 else "exec_done", base + 2
            ),
        ]
    writer.write(msgs)
    writer.commit()
    assert rows(
        writer, "SELECT try_id, psutil_process_time_user FROM resource ORDER BY try_id"
    ) == [(0, 1.0), (1, 2.0)]
    assert rows(writer, "SELECT try_id FROM try ORDER BY try_id") == [(0,), (1,)]
    assert rows(writer, "SELECT try_id, task_status_name FROM status ORDER BY timestamp") == [
        (0, "fail_retryable"),
        (1, "exec_done"),
    ]
    assert rows(writer, "SELECT tasks_completed_count, tasks_failed_count FROM workflow") == [
        (1, 0)
    ]


def test_memoized_task_has_no_try_of_its_own(writer, run_id):
    writer.write(
        [
            workflow_start(run_id, T0),
            TaskInfo(run_id, 3, "f", True, "x", T0, hashsum="h"),
            TaskStatus(run_id, 3, 0, "pending", T0),
            TaskStatus(run_id, 3, 0, "memo_done", T0 + 0.001),
        ]
    )
    writer.commit()
    assert rows(writer, "SELECT count(*) FROM try") == [(0,)]
    # Parsl's tasks_completed_count counts exec_done only.
    assert rows(writer, "SELECT tasks_completed_count FROM workflow") == [(0,)]


def test_counts_are_current_before_the_run_ends(writer, run_id):
    writer.write([workflow_start(run_id, T0)])
    writer.write([TaskStatus(run_id, i, 0, "exec_done", T0 + i) for i in range(3)])
    writer.write([TaskStatus(run_id, 9, 0, "failed", T0 + 9)])
    writer.write([TaskStatus(run_id, 10, 0, "dep_fail", T0 + 10)])  # in neither count (Parsl)
    writer.commit()
    assert rows(
        writer, "SELECT tasks_completed_count, tasks_failed_count, time_completed FROM workflow"
    ) == [(3, 1, None)]


def test_no_transition_is_lost_on_equal_timestamps(writer, run_id):
    writer.write(
        [
            workflow_start(run_id, T0),
            TaskStatus(run_id, 1, 0, "pending", T0),
            TaskStatus(run_id, 1, 1, "pending", T0),  # another try, same microsecond
            TaskStatus(run_id, 1, 1, "pending", T0),  # the very same transition again
        ]
    )
    writer.commit()
    assert rows(writer, "SELECT try_id, timestamp FROM status ORDER BY try_id") == [
        (0, "2023-11-14 22:13:20.250000"),
        (1, "2023-11-14 22:13:20.250001"),
    ]


def test_heartbeat_and_dropped_counts_reach_taskscope_run(writer, run_id):
    writer.note_dropped(run_id, 2)  # before the run's row exists: kept until it does
    writer.commit()
    writer.write([workflow_start(run_id, T0)])
    writer.heartbeat(run_id, T0 + 30)
    writer.commit()
    assert rows(
        writer,
        "SELECT status, last_heartbeat, heartbeat_interval, messages_dropped FROM taskscope_run",
    ) == [("running", "2023-11-14 22:13:50.250000", 2.0, 2)]


def test_long_reader_neither_blocks_the_writer_nor_loses_rows(tmp_path, run_id):
    path = tmp_path / "m.db"
    writer = DatabaseWriter(open_for_writing(path))
    writer.write([workflow_start(run_id, T0)])
    writer.commit()
    reader = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
    reader.execute("BEGIN")
    assert reader.execute("SELECT count(*) FROM status").fetchone() == (0,)  # snapshot taken
    done = threading.Event()

    def write_many():
        for batch in range(50):
            writer.write(
                [
                    TaskStatus(run_id, batch * 200 + i, 0, "pending", T0 + batch + i * 1e-3)
                    for i in range(200)
                ]
                + [sample(run_id, batch, 0, T0 + batch)] * 1
            )
            writer.commit()  # well past wal_autocheckpoint's 1000 pages over the run
        done.set()

    thread = threading.Thread(target=write_many)
    thread.start()
    thread.join(60)
    assert done.is_set(), "the writer was blocked by a reader"
    # The reader's snapshot is stable while it holds it...
    assert reader.execute("SELECT count(*) FROM status").fetchone() == (0,)
    reader.execute("COMMIT")
    # ...and every row is there once it looks again.
    assert reader.execute("SELECT count(*) FROM status").fetchone() == (10_000,)
    assert reader.execute("SELECT count(*) FROM resource").fetchone() == (50,)
    writer.close()
    check = sqlite3.connect(path)
    assert check.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert check.execute("SELECT count(*) FROM status").fetchone() == (10_000,)


def test_block_changes_within_one_microsecond_are_all_kept(writer, run_id):
    """A cluster poll can see a job submitted and running at once; the block table's key
    includes the timestamp, so the second row must not be ignored as a duplicate."""
    writer.write(
        [
            workflow_start(run_id, T0),
            BlockInfo(run_id, "dask", "b-0", "PENDING", T0 + 1, job_id="5"),
            BlockInfo(run_id, "dask", "b-0", "RUNNING", T0 + 1, job_id="5"),
            BlockInfo(run_id, "dask", "b-0", "RUNNING", T0 + 1, job_id="5"),  # sent again
            BlockInfo(run_id, "dask", "b-1", "PENDING", T0 + 1, job_id="6"),  # another block
        ]
    )
    writer.commit()
    writer.write([BlockInfo(run_id, "dask", "b-0", "CANCELLED", T0 + 1, job_id="5")])
    writer.commit()
    assert rows(
        writer, "SELECT block_id, status, timestamp FROM block ORDER BY block_id, timestamp"
    ) == [
        ("b-0", "PENDING", "2023-11-14 22:13:21.250000"),
        ("b-0", "RUNNING", "2023-11-14 22:13:21.250001"),
        ("b-0", "CANCELLED", "2023-11-14 22:13:21.250002"),
        ("b-1", "PENDING", "2023-11-14 22:13:21.250000"),
    ]


def test_a_batch_of_colliding_statuses_is_written_whole_and_in_linear_time(writer, run_id):
    """One task's statuses with distinct try ids at one instant (a forged flood took 7.3 s for
    10,000 of them: each collision walked past all the earlier ones). 40,000 would take
    minutes that way; linear, about a second. Every one is a row."""
    import time as clock

    count = 40_000
    writer.write([workflow_start(run_id, T0), TaskInfo(run_id, 1, "f", False, "x", T0)])
    batch = [TaskStatus(run_id, 1, try_id, "running", T0 + 1) for try_id in range(count)]
    started = clock.monotonic()
    writer.write(batch)
    writer.commit()
    assert clock.monotonic() - started < 30
    rows = writer.conn.execute(
        "SELECT count(*), count(DISTINCT timestamp) FROM status WHERE task_status_name = 'running'"
    ).fetchone()
    assert rows == (count, count)


def test_statuses_within_one_microsecond_are_all_kept(writer, run_id):
    """Floats less than a microsecond apart format to the same timestamp text (the row's key):
    each try's row is kept, a microsecond apart, and a repeat of one is still one row."""
    writer.write([workflow_start(run_id, T0), TaskInfo(run_id, 1, "f", False, "x", T0)])
    base = T0 + 1.000_000_1
    writer.write(
        [TaskStatus(run_id, 1, try_id, "launched", base + try_id * 1e-7) for try_id in range(5)]
        + [TaskStatus(run_id, 1, 0, "launched", base)]  # try 0's transition again
    )
    writer.commit()
    rows = writer.conn.execute(
        "SELECT try_id, timestamp FROM status WHERE task_status_name = 'launched' ORDER BY try_id"
    ).fetchall()
    assert [r[0] for r in rows] == [0, 1, 2, 3, 4]
    assert len({r[1] for r in rows}) == 5


def test_ten_minute_occupancy_holds_each_workers_busy_time(writer, run_id):
    """Tries that cross ten-minute boundaries: each ten minutes gets the seconds each worker
    spent in it, the try's end is counted where it ended, and the rows are the sums of the
    per-minute rows (which is how an older database's level is made, rollup_rebuild)."""
    from taskscope.store.rollup_rebuild import add_ten_minute_occupancy

    start = 1_700_000_400.0  # a ten-minute boundary
    tries = [(1, "w1", start + 590, start + 610), (2, "w2", start + 100, start + 1500)]
    messages = [workflow_start(run_id, start)]
    for task_id, worker, began, ended in tries:
        messages.append(
            TaskInfo(run_id, task_id, "f", True, "htex", start, state="pending", timestamp=start)
        )
        messages.append(
            TryRun(run_id, task_id, 0, "h", "0", began, time_ended=ended, worker=worker)
        )
    writer.write(messages)
    first = int(start // 600)
    kept = rows(
        writer,
        "SELECT bucket - ?, worker, busy_s, tries_ended FROM taskscope_occupancy_10min "
        "WHERE run_id = ? ORDER BY 1, 2",
        first,
        run_id,
    )
    assert kept == [
        (0, "w1", 10.0, 0),
        (0, "w2", 500.0, 0),
        (1, "w1", 10.0, 1),
        (1, "w2", 600.0, 0),
        (2, "w2", 300.0, 1),
    ]
    add_ten_minute_occupancy(writer.conn, run_id)
    assert (
        rows(
            writer,
            "SELECT bucket - ?, worker, busy_s, tries_ended FROM taskscope_occupancy_10min "
            "WHERE run_id = ? ORDER BY 1, 2",
            first,
            run_id,
        )
        == kept
    )
