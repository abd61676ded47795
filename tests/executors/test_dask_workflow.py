"""Workflows on the Dask executor behave as on the local executors, and monitoring records
them with the Dask workers' real hosts, blocks, nodes and resource samples.

One local Dask cluster (two worker processes) serves the module; each test loads its own
workflow (and monitoring database) on it.
"""

from __future__ import annotations

import os
import socket
import sqlite3
import time
from pathlib import Path

import pytest

pytest.importorskip("distributed", reason="needs the dask extra: pip install taskscope[dask]")

import taskscope
from taskscope import bash_app, join_app, python_app
from taskscope.cluster.dask_local import subprocess_cluster
from taskscope.config import Config
from taskscope.errors import AppTimeout, BashExitFailure, DependencyError
from taskscope.executors.dask import DaskExecutor
from taskscope.monitoring import MonitoringHub

HOST = socket.gethostname()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    cluster = subprocess_cluster(2, 1, str(tmp_path_factory.mktemp("dask-logs")))
    yield cluster
    cluster.close()


@pytest.fixture
def run(tmp_path, cluster):
    """Load a monitored workflow on the shared cluster; returns the database path."""
    db = tmp_path / "monitoring.db"
    loaded = []

    def load(**config_kwargs) -> Path:
        config = Config(
            executors=[DaskExecutor(label="dask", cluster=cluster, watch_interval=0.2)],
            monitoring=MonitoringHub(
                logging_endpoint=f"sqlite:///{db}", resource_monitoring_interval=0.2
            ),
            run_dir=str(tmp_path / "runinfo"),
            strategy="none",
            **config_kwargs,
        )
        loaded.append(taskscope.load(config))
        return db

    yield load
    for dfk in loaded:
        dfk.cleanup()
    taskscope.clear()


def rows(db: Path, sql: str, *args) -> list[tuple]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()


@python_app
def add(a, b):
    time.sleep(0.05)
    return a + b


@python_app
def where_am_i():
    time.sleep(0.3)
    return socket.gethostname(), os.getpid()


@python_app
def fail_first_time(marker: str):
    if not os.path.exists(marker):
        open(marker, "w").close()
        raise RuntimeError("first try fails")
    return "second try worked"


@python_app
def always_fails():
    raise ValueError("broken on purpose")


@python_app
def die_first_time(marker: str):
    if not os.path.exists(marker):
        open(marker, "w").close()
        os._exit(9)
    return os.getpid()


@bash_app
def echo(text, stdout=None, stderr=None):
    return f"echo {text}"


@bash_app
def exit_with(code):
    return f"exit {code}"


@bash_app
def sleep_for(seconds, walltime=None):
    return f"sleep {seconds}"


@join_app
def add_pairs(x, y):
    return [add(x, y), add(y, x)]


def test_diamond_runs_on_two_workers_and_is_recorded(run):
    db = run()
    left, right = add(1, 2), add(3, 4)
    total = add(left, right)
    places = [where_am_i() for _ in range(6)]
    assert total.result(timeout=60) == 10
    pids = {f.result(timeout=60)[1] for f in places}
    assert len(pids) == 2 and os.getpid() not in pids
    taskscope.dfk().cleanup()

    n_tasks = 9
    assert rows(db, "SELECT count(*) FROM task")[0][0] == n_tasks
    finals = rows(db, "SELECT count(*) FROM status WHERE task_status_name = 'exec_done'")
    assert finals[0][0] == n_tasks
    # Every task went through the worker-side states too, in order.
    for (task_id,) in rows(db, "SELECT task_id FROM task"):
        states = [
            s
            for (s,) in rows(
                db,
                "SELECT task_status_name FROM status WHERE task_id = ? ORDER BY timestamp",
                task_id,
            )
        ]
        assert states == ["pending", "launched", "running", "running_ended", "exec_done"]
    tries = rows(db, "SELECT hostname, block_id, task_executor FROM try")
    assert len(tries) == n_tasks
    assert {t[0] for t in tries} == {HOST}
    assert {t[1] for t in tries} == {"0", "1"}
    assert {t[2] for t in tries} == {"dask"}
    # Every try has at least its final resource sample, attributed to it.
    sampled = rows(db, "SELECT count(DISTINCT task_id) FROM resource")
    assert sampled[0][0] == n_tasks
    nodes = rows(db, "SELECT hostname, uid, block_id, active, cpu_count FROM node")
    assert {(n[2], n[3]) for n in nodes} >= {("0", 1), ("1", 1), ("0", 0), ("1", 0)}
    assert {n[0] for n in nodes} == {HOST} and all(n[4] >= 1 for n in nodes)
    blocks = rows(db, "SELECT block_id, status FROM block WHERE executor_label = 'dask'")
    assert {b[0] for b in blocks} == {"0", "1"}
    assert {b[1] for b in blocks} >= {"PENDING", "RUNNING"}


def test_retries_and_dep_fail(run, tmp_path):
    db = run(retries=1)
    retried = fail_first_time(str(tmp_path / "marker"))
    broken = always_fails()
    downstream = add(broken, 1)
    assert retried.result(timeout=60) == "second try worked"
    with pytest.raises(ValueError, match="broken on purpose"):
        broken.result(timeout=60)
    with pytest.raises(DependencyError):
        downstream.result(timeout=60)
    taskscope.dfk().cleanup()
    tries = rows(db, "SELECT try_id, hostname FROM try WHERE task_id = ?", retried.tid)
    assert sorted(t[0] for t in tries) == [0, 1] and {t[1] for t in tries} == {HOST}
    states = {
        s for (s,) in rows(db, "SELECT task_status_name FROM status WHERE task_id = ?", retried.tid)
    }
    assert "fail_retryable" in states and "exec_done" in states
    dep = rows(db, "SELECT task_status_name FROM status WHERE task_id = ?", downstream.tid)
    assert ("dep_fail",) in dep and ("running",) not in dep


def test_bash_apps_exit_codes_output_files_and_walltime(run, tmp_path):
    run()
    out = tmp_path / "echo.out"
    assert echo("hello from dask", stdout=str(out)).result(timeout=60) == 0
    assert out.read_text().strip() == "hello from dask"
    with pytest.raises(BashExitFailure) as info:
        exit_with(3).result(timeout=60)
    assert info.value.exitcode == 3
    with pytest.raises(AppTimeout):
        sleep_for(30, walltime=0.5).result(timeout=60)


def test_join_app_waits_for_the_apps_it_returns(run):
    db = run()
    assert add_pairs(2, 5).result(timeout=60) == [7, 7]
    taskscope.dfk().cleanup()
    assert ("joining",) in rows(db, "SELECT task_status_name FROM status")


def test_worker_killed_mid_task_fails_that_try_and_the_retry_succeeds(run, tmp_path):
    db = run(retries=1)
    fut = die_first_time(str(tmp_path / "died"))
    assert fut.result(timeout=120) > 0
    taskscope.dfk().cleanup()
    history = rows(db, "SELECT task_fail_history FROM try WHERE task_id = ?", fut.tid)
    failures = rows(
        db,
        "SELECT exception_type, message FROM taskscope_try_failure WHERE task_id = ?",
        fut.tid,
    )
    assert failures and failures[0][0] == "WorkerLost", (failures, history)
    assert "lost while running this task" in failures[0][1]
    states = [
        s
        for (s,) in rows(
            db, "SELECT task_status_name FROM status WHERE task_id = ? ORDER BY timestamp", fut.tid
        )
    ]
    assert "fail_retryable" in states and states[-1] == "exec_done"


def test_without_dask_installed_the_config_says_what_to_install(monkeypatch):
    import taskscope.executors.dask as dask_module

    monkeypatch.setattr(dask_module, "dask_available", lambda: False)
    with pytest.raises(Exception, match=r"pip install taskscope\[dask\]"):
        DaskExecutor(label="nodask")
