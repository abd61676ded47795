"""Real workflows (taskscope.load + apps) on both local executors, recorded to SQLite."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import textwrap
import time

import pytest
from monhelp import burn_cpu, hold_memory, wait_for

import taskscope
from taskscope import bash_app, python_app
from taskscope.addresses import address_by_hostname
from taskscope.config import Config
from taskscope.executors import HighThroughputExecutor, ThreadPoolExecutor
from taskscope.monitoring.monitoring import MonitoringHub

PARSL_TABLES = ("workflow", "task", "try", "status", "resource", "node", "block")


def make_executor(kind: str):
    if kind == "threads":
        return ThreadPoolExecutor(label="threads", max_threads=2)
    return HighThroughputExecutor(label="htex", max_workers_per_node=2)


@pytest.fixture(params=["threads", "htex"])
def executor_kind(request):
    return request.param


def monitored_config(tmp_path, kind, **hub_kwargs):
    hub_kwargs.setdefault("resource_monitoring_interval", 0.5)
    hub = MonitoringHub(logging_endpoint=f"sqlite:///{tmp_path}/monitoring.db", **hub_kwargs)
    return Config(
        executors=[make_executor(kind)],
        monitoring=hub,
        retries=1,
        run_dir=str(tmp_path / "runinfo"),
        strategy="none",
    )


def db(tmp_path):
    return sqlite3.connect(f"file:{tmp_path}/monitoring.db?mode=ro", uri=True)


def states_of(conn, task_id):
    rows = conn.execute(
        "SELECT task_status_name, try_id FROM status WHERE task_id = ? ORDER BY timestamp",
        (task_id,),
    )
    return [tuple(r) for r in rows]


@python_app
def add(a, b):
    return a + b


@python_app
def fails_once(marker):
    if not os.path.exists(marker):
        open(marker, "w").close()
        raise KeyError("first try fails")
    return "second try"


@python_app
def always_fails():
    raise ValueError("no luck")


@bash_app
def exits_with(code):
    return f"exit {code}"


@python_app
def burn(seconds):
    return burn_cpu(seconds)


@python_app
def hold(megabytes):
    return hold_memory(megabytes, 0.3)


@python_app
def slow(seconds):
    time.sleep(seconds)
    return seconds


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_documented_config_runs_as_written_and_fills_all_tables(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # logging_endpoint defaults to ./monitoring.db
    config = Config(
        executors=[
            HighThroughputExecutor(
                label="local_htex",
                cores_per_worker=1,
                max_workers_per_node=4,
                address=address_by_hostname(),
            )
        ],
        monitoring=MonitoringHub(
            hub_address=address_by_hostname(),
            hub_port=free_port(),  # the documentation's 55055 may be taken on a shared host
            monitoring_debug=False,
            resource_monitoring_interval=10,
        ),
        strategy="none",
    )
    with taskscope.load(config):
        assert [add(i, 1).result() for i in range(5)] == [1, 2, 3, 4, 5]
    conn = db(tmp_path)
    for table in PARSL_TABLES:
        assert conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0] > 0, table
    assert conn.execute("SELECT count(*) FROM task").fetchone() == (5,)
    assert conn.execute("SELECT count(*) FROM resource").fetchone() == (5,)
    assert conn.execute("SELECT status FROM taskscope_run").fetchone() == ("completed",)


def test_workflow_states_tries_failures_and_counts(tmp_path, executor_kind):
    with taskscope.load(monitored_config(tmp_path, executor_kind)) as dfk:
        ok = add(1, 2)
        retried = fails_once(str(tmp_path / "marker"))
        failed = always_fails()
        dep_fail = add(failed, 1)
        bash_failed = exits_with(3)
        memo = python_app(cache=True)(add.func)
        first = memo(5, 5)
        first.result()
        memo_hit = memo(5, 5)
        taskscope.wait_for_current_tasks()
        run_id = dfk.run_id
    conn = db(tmp_path)
    assert states_of(conn, ok.tid) == [
        ("pending", 0),
        ("launched", 0),
        ("running", 0),
        ("running_ended", 0),
        ("exec_done", 0),
    ]
    assert states_of(conn, retried.tid) == [
        ("pending", 0),
        ("launched", 0),
        ("running", 0),
        ("running_ended", 0),
        ("fail_retryable", 0),
        ("launched", 1),
        ("running", 1),
        ("running_ended", 1),
        ("exec_done", 1),
    ]
    assert [s for s, _ in states_of(conn, failed.tid)][-1] == "failed"
    assert states_of(conn, dep_fail.tid) == [("pending", 0), ("dep_fail", 0)]
    assert states_of(conn, memo_hit.tid) == [("pending", 0), ("memo_done", 0)]
    # The memoized task ran nowhere: no try of its own.
    assert conn.execute(
        "SELECT count(*) FROM try WHERE task_id = ?", (memo_hit.tid,)
    ).fetchone() == (0,)

    tries = conn.execute(
        "SELECT try_id, hostname, task_try_time_running, task_try_time_returned, "
        "task_fail_history FROM try WHERE task_id = ? ORDER BY try_id",
        (retried.tid,),
    ).fetchall()
    assert [t[0] for t in tries] == [0, 1]
    assert all(t[1] and t[2] and t[3] for t in tries)
    assert tries[0][3] <= tries[1][2]  # the second try ran after the first returned
    failure = conn.execute(
        "SELECT try_id, exception_type, message, traceback FROM taskscope_try_failure "
        "WHERE task_id = ?",
        (retried.tid,),
    ).fetchall()
    assert len(failure) == 1 and failure[0][:2] == (0, "KeyError")
    assert "first try fails" in failure[0][2] and "fails_once" in failure[0][3]
    exit_codes = conn.execute(
        "SELECT exit_code FROM taskscope_try_failure WHERE task_id = ?", (bash_failed.tid,)
    ).fetchall()
    assert exit_codes == [(3,), (3,)]  # both tries

    # Each try has its own final resource sample.
    assert conn.execute(
        "SELECT count(DISTINCT try_id) FROM resource WHERE task_id = ?", (retried.tid,)
    ).fetchone() == (2,)
    completed, failed_count, ended = conn.execute(
        "SELECT tasks_completed_count, tasks_failed_count, time_completed FROM workflow "
        "WHERE run_id = ?",
        (run_id,),
    ).fetchone()
    # Parsl's meaning: exec_done and failed only (the memo hit and the dep_fail are in neither).
    assert (completed, failed_count) == (3, 2) and ended
    assert conn.execute("SELECT status FROM taskscope_run").fetchone() == ("failed",)


def test_htex_tries_know_their_block_and_nodes_go_inactive(tmp_path):
    with taskscope.load(monitored_config(tmp_path, "htex")):
        [add(i, i).result() for i in range(4)]
    conn = db(tmp_path)
    assert conn.execute("SELECT DISTINCT block_id FROM try").fetchall() == [("0",)]
    nodes = conn.execute("SELECT uid, active FROM node ORDER BY id").fetchall()
    # A row when the pool joins and one when it leaves: never one per task.
    assert len(nodes) <= 4
    assert {uid for uid, active in nodes if active} == {uid for uid, active in nodes if not active}
    assert nodes[-1][1] == 0  # the last word on the pool: inactive
    assert [b[0] for b in conn.execute("SELECT status FROM block ORDER BY timestamp")] == [
        "PENDING",
        "RUNNING",
        "SCALED_IN",
    ]


def test_cpu_and_memory_figures_are_the_tries_own(tmp_path, executor_kind):
    with taskscope.load(monitored_config(tmp_path, executor_kind)):
        warm = burn(0.2)
        warm.result()  # the worker has used CPU before: its total must not leak in
        spin = burn(2.0)
        spin.result()
        big = hold(500)
        big.result()
    conn = db(tmp_path)

    def last(task_id, column):
        return conn.execute(
            f"SELECT {column} FROM resource WHERE task_id = ? ORDER BY timestamp DESC LIMIT 1",
            (task_id,),
        ).fetchone()[0]

    assert 1.7 <= last(spin.tid, "psutil_process_time_user") <= 2.6
    assert last(big.tid, "psutil_process_memory_resident") >= 500 * 1024 * 1024
    assert last(spin.tid, "psutil_process_memory_resident") < 500 * 1024 * 1024
    # A periodic sample was taken while the 2 s try ran, besides the try's final one. (Not
    # "one per 0.5 s": on a loaded machine the sampler thread waits for the CPU and the GIL,
    # and two samples of a 2 s spin is what a run beside six busy processes got.)
    assert (
        conn.execute("SELECT count(*) FROM resource WHERE task_id = ?", (spin.tid,)).fetchone()[0]
        >= 2
    )


def test_counts_are_current_while_the_workflow_runs(tmp_path):
    with taskscope.load(monitored_config(tmp_path, "threads")):
        done = [add(i, 1) for i in range(5)]
        [f.result() for f in done]
        long = slow(3.0)
        assert wait_for(
            lambda: (
                db(tmp_path).execute("SELECT tasks_completed_count FROM workflow").fetchone()
                == (5,)
            ),
            timeout=2.0,
        )
        running = db(tmp_path).execute(
            "SELECT count(*) FROM status WHERE task_id = ? AND task_status_name = 'running'",
            (long.tid,),
        )
        assert running.fetchone() == (1,)
        assert db(tmp_path).execute("SELECT time_completed FROM workflow").fetchone() == (None,)
        long.result()


SIGNALLED_SCRIPT = """
import os, sys, time
sys.path.insert(0, {tests!r})
import taskscope
from taskscope import python_app
from taskscope.config import Config
from taskscope.executors import HighThroughputExecutor
from taskscope.monitoring import MonitoringHub

@python_app
def nap(seconds):
    time.sleep(seconds)
    return seconds

hub = MonitoringHub(logging_endpoint="sqlite:///{db}", resource_monitoring_interval=0.2)
config = Config(executors=[HighThroughputExecutor(max_workers_per_node=2)], monitoring=hub,
                run_dir={rundir!r}, strategy="none")
with taskscope.load(config):
    for i in range(5):
        nap(0.01).result()
    open({ready!r}, "w").close()
    nap(60).result()
"""


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGKILL])
def test_signalled_workflow_leaves_a_truthful_database(tmp_path, signum):
    ready = tmp_path / "ready"
    script = SIGNALLED_SCRIPT.format(
        tests=os.path.dirname(__file__),
        db=f"{tmp_path}/monitoring.db",
        rundir=str(tmp_path / "runinfo"),
        ready=str(ready),
    )
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(script)])
    try:
        assert wait_for(ready.exists, 30)
        time.sleep(0.5)
        proc.send_signal(signum)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    conn = db(tmp_path)
    # The writer process stops on its own once the workflow process is gone, after writing
    # everything the workflow had spooled (its spool is then empty).
    spool = f"{tmp_path}/monitoring.db.spool"
    assert wait_for(
        lambda: (
            not any(name.endswith(".seg") for name in os.listdir(spool))
            and (
                not os.path.exists(f"{tmp_path}/monitoring.db-wal")
                or conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
            )
        ),
        30,
    )
    status, beat = conn.execute("SELECT status, last_heartbeat FROM taskscope_run").fetchone()
    completed, ended = conn.execute(
        "SELECT tasks_completed_count, time_completed FROM workflow"
    ).fetchone()
    assert completed == 5  # everything up to the signal was written
    if signum == signal.SIGKILL:
        assert status == "running" and ended is None
        beat_at = time.mktime(time.strptime(beat[:19], "%Y-%m-%d %H:%M:%S")) - time.timezone
        time.sleep(0.1)
        assert time.time() - beat_at > 0  # and it never moves again: readers call it lost
        later = db(tmp_path).execute("SELECT last_heartbeat FROM taskscope_run").fetchone()[0]
        assert later == beat
    else:
        assert status == "aborted" and ended is not None
