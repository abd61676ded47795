"""Nothing handed to monitoring is lost: a slow writer, a killed writer, a killed workflow, a
locked database; and a deleted database is reported (docs/reliability.md, Durability)."""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
import warnings

import pytest
from monhelp import htex_config, kernel_launch, nap, query, started_hub, wait_for

import taskscope
from taskscope import python_app
from taskscope.cli import main as cli_main
from taskscope.monitoring import MonitoringError, MonitoringHub, MonitoringWarning
from taskscope.monitoring.messages import TaskStatus, WorkflowEnd
from taskscope.monitoring.receiver import THROTTLE_ENV
from taskscope.store.spool import list_segments, spool_dir

pytestmark = pytest.mark.timeout(300)


def one_task(hub: MonitoringHub, run_id: str, task_id: int) -> None:
    """A task as the kernel reports it, with its try run in this process (thread executor)."""
    kernel_launch(hub, run_id, task_id)
    call = hub.wrap(nap, run_id=run_id, task_id=task_id, try_id=0, executor_label="x")
    call(0)
    hub.send(TaskStatus(run_id, task_id, 0, "exec_done", time.time()))


def assert_complete(tmp_path, tasks: int) -> None:
    """Every row of ``tasks`` tasks (ids 0..tasks-1) is there, each exactly once."""
    assert query(tmp_path, "SELECT count(*) FROM task") == [(tasks,)]
    assert query(tmp_path, "SELECT count(*) FROM try") == [(tasks,)]
    # pending, launched, running, running_ended, exec_done
    assert query(tmp_path, "SELECT count(*) FROM status") == [(5 * tasks,)]
    assert query(tmp_path, "SELECT count(DISTINCT task_id) FROM resource") == [(tasks,)]
    assert query(tmp_path, "SELECT tasks_completed_count FROM workflow") == [(tasks,)]


def end(hub: MonitoringHub, run_id: str, tasks: int) -> None:
    hub.send(WorkflowEnd(run_id, time.time(), "completed", tasks, 0))
    hub.close()


def test_a_slow_writer_loses_nothing_and_close_shows_its_progress(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(THROTTLE_ENV, "0.2")  # 0.2 s a frame: ~5 frames/s against 20 sent
    hub, run_id = started_hub(tmp_path)
    tasks = 300
    for task_id in range(tasks):
        one_task(hub, run_id, task_id)
        time.sleep(0.006)
    end(hub, run_id, tasks)
    err = capsys.readouterr().err
    assert "events left" in err, err
    assert "all events written" in err
    assert_complete(tmp_path, tasks)
    assert list_segments(spool_dir(tmp_path / "monitoring.db")) == []


def test_a_killed_writer_is_restarted_and_nothing_is_lost(tmp_path):
    hub, run_id = started_hub(tmp_path)
    tasks = 400
    first_pid = hub.writer_pid
    for task_id in range(tasks):
        one_task(hub, run_id, task_id)
        if task_id == 150:
            os.kill(first_pid, signal.SIGKILL)
        time.sleep(0.002)
    end(hub, run_id, tasks)
    assert hub._writer.restarts == 1 and hub.writer_pid != first_pid
    assert_complete(tmp_path, tasks)


@python_app
def noop(i):
    return i


@contextlib.contextmanager
def busy_machine(processes: int):
    """`processes` CPU-bound processes beside the run: on 2 cores the writer is starved, and
    frames wait unread in its queues for many seconds."""
    spinners = [
        subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(processes)
    ]
    try:
        yield
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()


@pytest.mark.parametrize("spinners", [0, 6], ids=["idle", "six busy processes beside it"])
def test_a_killed_writer_under_htex_loses_no_row(tmp_path, spinners):
    # Loaded, the previous design (workers kept only their last 10 s of frames to send
    # again) lost 1,663 of these 3,000 tasks' worker rows; now a worker keeps each frame
    # until the writer confirms it is spooled.
    tasks = 3000
    with busy_machine(spinners), taskscope.load(htex_config(tmp_path)) as dfk:
        hub = dfk.monitoring
        first_pid = hub.writer_pid
        futures = [noop(i) for i in range(tasks)]
        futures[tasks // 3].result()
        os.kill(first_pid, signal.SIGKILL)
        assert sum(f.result() for f in futures) == sum(range(tasks))
    assert hub._writer.restarts == 1
    assert query(tmp_path, "SELECT count(*) FROM task") == [(tasks,)]
    assert query(tmp_path, "SELECT count(*) FROM try") == [(tasks,)]
    assert query(tmp_path, "SELECT count(*) FROM status") == [(5 * tasks,)]
    assert query(tmp_path, "SELECT count(DISTINCT task_id) FROM resource") == [(tasks,)]
    assert query(
        tmp_path,
        "SELECT tasks_completed_count, status FROM workflow JOIN taskscope_run USING (run_id)",
    ) == [(tasks, "completed")]


KILLED_SCRIPT = """
import os, sys, time
sys.path.insert(0, {helpers!r})
from pathlib import Path
from monhelp import started_hub
from test_durability import one_task

hub, run_id = started_hub(Path({tmp!r}))
with open({pidfile!r}, "w") as f:
    f.write(str(hub.writer_pid))
task_id = 0
while True:
    one_task(hub, run_id, task_id)
    hub._writer.flush()  # spooled: from here on it survives any kill
    with open({progress!r} + ".tmp", "w") as f:  # replaced whole: never read half-written
        f.write(str(task_id))
    os.replace({progress!r} + ".tmp", {progress!r})
    task_id += 1
    time.sleep(0.002)
"""


@pytest.mark.parametrize("finish", ["taskscope recover", "the next run"])
def test_every_event_sent_before_the_workflow_and_writer_are_killed_is_recovered(tmp_path, finish):
    progress, pidfile = tmp_path / "progress", tmp_path / "writer.pid"
    script = KILLED_SCRIPT.format(
        helpers=os.path.dirname(__file__),
        tmp=str(tmp_path),
        progress=str(progress),
        pidfile=str(pidfile),
    )
    # A slow writer, so that much of what was sent is only in the spool at the kill.
    env = dict(os.environ, **{THROTTLE_ENV: "0.05"})
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(script)], env=env)
    try:
        assert wait_for(lambda: progress.exists() and int(progress.read_text() or 0) >= 300, 60)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        os.kill(int(pidfile.read_text()), signal.SIGKILL)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    sent = int(progress.read_text()) + 1  # tasks 0..sent-1 were spooled before the kill
    time.sleep(0.5)  # let the kernel release the killed writer's locks
    db = tmp_path / "monitoring.db"
    unwritten = len(list_segments(spool_dir(db)))
    assert unwritten  # the spool held what the slow writer had not written
    if finish == "taskscope recover":
        assert cli_main(["recover", str(db)]) == 0
    else:
        hub, run_id = started_hub(tmp_path)
        end(hub, run_id, 0)
    done = query(
        tmp_path,
        "SELECT count(DISTINCT task_id) FROM status WHERE task_status_name = "
        "'exec_done' AND task_id < ?",
        sent,
    )[0][0]
    assert done == sent
    rows = query(tmp_path, "SELECT count(*) FROM status WHERE task_id < ?", sent)[0][0]
    assert rows == 5 * sent
    # Each event counted once: the completed count is the exec_done rows, no more.
    counted = query(tmp_path, "SELECT max(tasks_completed_count) FROM workflow")[0][0]
    total_done = query(
        tmp_path, "SELECT count(*) FROM status WHERE task_status_name = 'exec_done'"
    )[0][0]
    assert counted == total_done
    assert list_segments(spool_dir(db)) == []


@pytest.mark.parametrize(
    "hold_s", [pytest.param(15, id="15s"), pytest.param(40, id="40s", marks=pytest.mark.soak)]
)
def test_a_long_exclusive_lock_delays_recording_and_loses_nothing(tmp_path, capsys, hold_s):
    hub, run_id = started_hub(tmp_path)
    one_task(hub, run_id, 0)
    assert wait_for(lambda: query(tmp_path, "SELECT count(*) FROM status") == [(5,)], 30)
    locked = threading.Event()

    def hold_lock() -> None:
        conn = sqlite3.connect(tmp_path / "monitoring.db", isolation_level=None)
        conn.execute("BEGIN EXCLUSIVE")
        locked.set()
        time.sleep(hold_s)  # longer than any busy timeout: the writer must wait it out
        conn.execute("COMMIT")
        conn.close()

    holder = threading.Thread(target=hold_lock)
    holder.start()
    locked.wait()
    tasks = 1
    with warnings.catch_warnings():
        warnings.simplefilter("error", MonitoringWarning)  # no "not recording" warning
        while holder.is_alive():
            one_task(hub, run_id, tasks)
            tasks += 1
            time.sleep(0.01)
        for _ in range(50):
            one_task(hub, run_id, tasks)
            tasks += 1
        end(hub, run_id, tasks)  # no error
    holder.join()
    err = capsys.readouterr().err
    assert err.count("recording is delayed: database is locked by another process") == 1, err
    assert "caught up" in err
    assert_complete(tmp_path, tasks)


def test_a_deleted_database_is_reported(tmp_path):
    hub, run_id = started_hub(tmp_path)
    one_task(hub, run_id, 0)
    db = tmp_path / "monitoring.db"
    assert wait_for(lambda: query(tmp_path, "SELECT count(*) FROM status") == [(5,)], 30)
    for suffix in ("", "-wal", "-shm"):
        (tmp_path / f"monitoring.db{suffix}").unlink(missing_ok=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        task_id = 1
        deadline = time.monotonic() + 30
        while not caught and time.monotonic() < deadline:
            one_task(hub, run_id, task_id)
            task_id += 1
            time.sleep(0.01)
    assert caught and caught[0].category is MonitoringWarning
    assert "was deleted during the run" in str(caught[0].message)
    with pytest.raises(MonitoringError, match="was deleted during the run"):
        hub.close()
    assert not db.exists()  # nothing was written into a new file behind the user's back


CTRL_C_SCRIPT = """
import os, sys, time
sys.path.insert(0, {helpers!r})
from pathlib import Path
from monhelp import started_hub
from test_durability import one_task
from taskscope.monitoring.messages import WorkflowEnd

hub, run_id = started_hub(Path({tmp!r}))
with open({pidfile!r}, "w") as f:
    f.write(str(hub.writer_pid))
for task_id in range({tasks}):
    one_task(hub, run_id, task_id)
    time.sleep(0.002)
hub.send(WorkflowEnd(run_id, time.time(), "completed", {tasks}, 0))
open({closing!r}, "w").close()
hub.close()
"""


def test_ctrl_c_while_close_waits_leaves_the_writer_finishing(tmp_path):
    import psutil

    pidfile, closing = tmp_path / "writer.pid", tmp_path / "closing"
    tasks = 300
    script = CTRL_C_SCRIPT.format(
        helpers=os.path.dirname(__file__),
        tmp=str(tmp_path),
        pidfile=str(pidfile),
        closing=str(closing),
        tasks=tasks,
    )
    env = dict(os.environ, **{THROTTLE_ENV: "0.3"})  # ~3 frames/s against ~20 sent
    proc = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(script)], env=env, stderr=subprocess.PIPE, text=True
    )
    try:
        assert wait_for(closing.exists, 120)
        time.sleep(3)  # close() is waiting for the slow writer, and says so
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "events left" in err, (proc.returncode, err)
    assert "stopped waiting" in err and "taskscope recover" in err
    writer = psutil.Process(int(pidfile.read_text()))
    writer.wait(120)  # it goes on, in the background, to the end
    assert_complete(tmp_path, tasks)
    assert query(tmp_path, "SELECT status FROM taskscope_run") == [("completed",)]


def test_a_database_locked_when_the_run_starts_delays_the_start_and_loses_nothing(tmp_path, capsys):
    db = tmp_path / "monitoring.db"
    hub, run_id = started_hub(tmp_path)  # the database exists, with a first run in it
    end(hub, run_id, 0)
    capsys.readouterr()
    locked = threading.Event()
    seen: list[str] = []

    def hold_lock() -> None:
        conn = sqlite3.connect(db, isolation_level=None)
        conn.execute("BEGIN EXCLUSIVE")
        locked.set()
        # Longer than the 10 s busy timeout of opening the database, and held until the
        # delay has been reported however slowly the loaded machine starts the writer.
        held_since = time.monotonic()
        while time.monotonic() - held_since < 90:
            seen.append(capsys.readouterr().err)
            if time.monotonic() - held_since > 12 and "recording is delayed" in "".join(seen):
                break
            time.sleep(0.2)
        conn.execute("COMMIT")
        conn.close()

    holder = threading.Thread(target=hold_lock)
    holder.start()
    locked.wait()
    hub, run_id = started_hub(tmp_path)  # waits for the lock instead of failing
    holder.join()
    for task_id in range(20):
        one_task(hub, run_id, task_id)
    end(hub, run_id, 20)
    err = "".join(seen) + capsys.readouterr().err
    assert "recording is delayed: database is locked by another process" in err, err
    assert "caught up" in err
    assert query(tmp_path, "SELECT count(*) FROM task WHERE run_id = ?", run_id) == [(20,)]
    assert query(tmp_path, "SELECT count(*) FROM status WHERE run_id = ?", run_id) == [(100,)]
