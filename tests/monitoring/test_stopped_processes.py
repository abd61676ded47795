"""SIGSTOP, then SIGCONT, of the writer, of a worker mid-task and of the workflow process,
during an HTEX run (docs/reliability.md, Durability): the run goes on or waits, and once the
process is continued every row of every task is there; a stopped writer is waited for, not
taken for dead and restarted. And SIGKILL of a worker mid-task: what it reported before the
kill is kept, its task fails (or is retried) and no other task loses a row."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
from monhelp import htex_config, query, wait_for

import taskscope
from taskscope import python_app

pytestmark = [pytest.mark.attack, pytest.mark.timeout(300)]

# The writer held 15 s stopped; the default suite stops each process for 8 s.
STOPS = [pytest.param(8, id="8s"), pytest.param(15, id="15s", marks=pytest.mark.soak)]


@python_app
def noop(i):
    return i


@python_app
def announce_then_sleep(pid_file, seconds):
    import os
    import time

    with open(pid_file + ".tmp", "w") as f:
        f.write(str(os.getpid()))
    os.rename(pid_file + ".tmp", pid_file)
    time.sleep(seconds)
    return "slept"


def run_tasks(first: int, count: int) -> int:
    futures = [noop(i) for i in range(first, first + count)]
    assert [f.result() for f in futures] == list(range(first, first + count))
    return first + count


def count(tmp_path, sql: str) -> int:
    return query(tmp_path, sql)[0][0]


def assert_every_row(tmp_path, tasks: int) -> None:
    assert count(tmp_path, "SELECT count(*) FROM task") == tasks
    assert count(tmp_path, "SELECT count(*) FROM try") == tasks
    # pending, launched, running, running_ended, exec_done
    assert count(tmp_path, "SELECT count(*) FROM status") == 5 * tasks
    assert count(tmp_path, "SELECT count(DISTINCT task_id) FROM resource") == tasks
    assert count(tmp_path, "SELECT tasks_completed_count FROM workflow") == tasks
    assert count(tmp_path, "SELECT count(*) FROM taskscope_run WHERE status = 'completed'") == 1


@pytest.mark.parametrize("stop_s", STOPS)
def test_a_stopped_writer_is_waited_for_and_loses_nothing(tmp_path, stop_s):
    with taskscope.load(htex_config(tmp_path)) as dfk:
        hub = dfk.monitoring
        tasks = run_tasks(0, 200)
        assert wait_for(lambda: count(tmp_path, "SELECT count(*) FROM status") == 5 * tasks, 60)
        writer = hub.writer_pid
        os.kill(writer, signal.SIGSTOP)
        try:
            deadline = time.monotonic() + stop_s
            while time.monotonic() < deadline:  # the run goes on meanwhile
                tasks = run_tasks(tasks, 20)
                time.sleep(0.05)
        finally:
            os.kill(writer, signal.SIGCONT)
        tasks = run_tasks(tasks, 200)
        # Caught up during the run, by the same writer process.
        assert wait_for(lambda: count(tmp_path, "SELECT count(*) FROM status") == 5 * tasks, 120)
        assert hub.writer_pid == writer
    assert hub._writer.restarts == 0
    assert_every_row(tmp_path, tasks)


@pytest.mark.parametrize("stop_s", STOPS)
def test_a_worker_stopped_mid_task_delays_its_task_and_loses_nothing(tmp_path, stop_s):
    pid_file = tmp_path / "worker.pid"
    with taskscope.load(htex_config(tmp_path)):
        tasks = run_tasks(0, 100)
        sleeper = announce_then_sleep(str(pid_file), 1.0)
        assert wait_for(pid_file.exists, 60)
        worker = int(pid_file.read_text())
        os.kill(worker, signal.SIGSTOP)
        try:
            others = [noop(i) for i in range(tasks + 1, tasks + 101)]
            time.sleep(stop_s)
        finally:
            os.kill(worker, signal.SIGCONT)
        assert sleeper.result(timeout=120) == "slept"
        assert [f.result(timeout=120) for f in others] == list(range(tasks + 1, tasks + 101))
        tasks += 101
    assert_every_row(tmp_path, tasks)


@pytest.mark.parametrize("retries", [0, 1])
def test_a_worker_killed_mid_task_keeps_what_it_sent_and_costs_only_that_task(tmp_path, retries):
    from taskscope.errors import WorkerLost

    pid_file = tmp_path / "worker.pid"
    with taskscope.load(htex_config(tmp_path, retries=retries)):
        tasks = run_tasks(0, 100)
        victim = announce_then_sleep(str(pid_file), 2.0)  # task id 100
        assert wait_for(pid_file.exists, 60)
        worker = int(pid_file.read_text())
        # Its try's start ('running') reaches the writer within the worker's send period.
        assert wait_for(
            lambda: (
                count(
                    tmp_path,
                    "SELECT count(*) FROM status WHERE task_id = 100 "
                    "AND task_status_name = 'running'",
                )
                == 1
            ),
            30,
        )
        os.kill(worker, signal.SIGKILL)
        tasks = run_tasks(tasks + 1, 100)
        if retries:
            assert victim.result(timeout=120) == "slept"
        else:
            with pytest.raises(WorkerLost):
                victim.result(timeout=120)
    others = tasks - 1
    states = "SELECT task_status_name FROM status WHERE task_id = 100 ORDER BY timestamp"
    history = [row[0] for row in query(tmp_path, states)]
    if retries:  # a retry is launched again at once (tests/dataflow/test_dataflow_monitoring.py)
        assert history == [
            "pending",
            "launched",
            "running",
            "fail_retryable",
            "launched",
            "running",
            "running_ended",
            "exec_done",
        ]
    else:
        assert history == ["pending", "launched", "running", "failed"]
    assert count(tmp_path, "SELECT count(*) FROM task") == tasks
    assert count(tmp_path, "SELECT count(*) FROM status WHERE task_id != 100") == 5 * others
    assert count(tmp_path, "SELECT count(*) FROM try WHERE task_id = 100") == 1 + retries
    assert count(tmp_path, "SELECT tasks_completed_count FROM workflow") == others + retries
    assert count(tmp_path, "SELECT tasks_failed_count FROM workflow") == 1 - retries


WORKFLOW_SCRIPT = """
import os, sys, time
sys.path.insert(0, {tests!r})
from pathlib import Path
import taskscope
from monhelp import htex_config
from test_stopped_processes import run_tasks

tmp = Path({tmp!r})
with taskscope.load(htex_config(tmp)):
    tasks = 0
    for batch in range({batches}):
        tasks = run_tasks(tasks, 20)
        with open({progress!r} + ".tmp", "w") as f:
            f.write(str(batch))
        os.replace({progress!r} + ".tmp", {progress!r})
        time.sleep(0.05)
"""


@pytest.mark.parametrize("stop_s", STOPS)
def test_a_stopped_workflow_process_loses_nothing_when_continued(tmp_path, stop_s):
    progress, batches = tmp_path / "progress", 60
    script = WORKFLOW_SCRIPT.format(
        tests=os.path.dirname(__file__), tmp=str(tmp_path), progress=str(progress), batches=batches
    )
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(script)])
    try:
        assert wait_for(lambda: progress.exists() and int(progress.read_text() or 0) >= 10, 120)
        proc.send_signal(signal.SIGSTOP)
        time.sleep(stop_s)
        proc.send_signal(signal.SIGCONT)
        assert proc.wait(180) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert_every_row(tmp_path, batches * 20)
