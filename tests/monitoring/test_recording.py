"""Wrapped tries report from threads and from other processes; figures are per try."""

import concurrent.futures as cf
import os
import subprocess
import threading
import time

import pytest
from monhelp import (
    burn_cpu,
    fail,
    hold_memory,
    kernel_launch,
    nap,
    query,
    shell,
    started_hub,
    wait_for,
)

from taskscope.monitoring import procfs
from taskscope.monitoring.messages import TaskStatus, TryInfo, WorkflowEnd


def finish(hub, run_id, task_ids, state="exec_done"):
    for task_id in task_ids:
        hub.send(TryInfo(run_id, task_id, 0, time_returned=time.time()))
        hub.send(TaskStatus(run_id, task_id, 0, state, time.time()))
    hub.send(WorkflowEnd(run_id, time.time(), "completed", len(task_ids), 0))
    hub.close()


def run_tries(hub, run_id, pool, func, args_by_task):
    futures = {}
    for task_id, args in args_by_task.items():
        kernel_launch(hub, run_id, task_id)
        call = hub.wrap(func, run_id=run_id, task_id=task_id, try_id=0, executor_label="x")
        futures[task_id] = pool.submit(call, *args)
    return {task_id: f.result(timeout=60) for task_id, f in futures.items()}


def final_samples(tmp_path):
    """The last resource row of each try: task_id -> (user s, resident bytes, pid)."""
    rows = query(
        tmp_path,
        "SELECT task_id, psutil_process_time_user, psutil_process_memory_resident, "
        "psutil_process_pid FROM resource r WHERE timestamp = (SELECT max(timestamp) FROM "
        "resource r2 WHERE r2.task_id = r.task_id AND r2.try_id = r.try_id)",
    )
    return {r[0]: r[1:] for r in rows}


@pytest.fixture(params=["threads", "processes"])
def pool(request, spawn_pool):
    if request.param == "processes":
        yield spawn_pool
    else:
        with cf.ThreadPoolExecutor(2) as threads:
            yield threads


def test_try_lifecycle_is_recorded_in_order(tmp_path, pool):
    hub, run_id = started_hub(tmp_path, resource_monitoring_interval=1)
    run_tries(hub, run_id, pool, nap, {0: (0.05,), 1: (0.05,)})
    finish(hub, run_id, [0, 1])
    for task_id in (0, 1):
        states = query(
            tmp_path,
            "SELECT task_status_name FROM status WHERE task_id = ? ORDER BY timestamp",
            task_id,
        )
        assert [s[0] for s in states] == [
            "pending",
            "launched",
            "running",
            "running_ended",
            "exec_done",
        ]
    tries = query(tmp_path, "SELECT hostname, task_executor, task_try_time_running FROM try")
    assert len(tries) == 2 and all(t[0] and t[1] == "x" and t[2] for t in tries)
    assert query(tmp_path, "SELECT tasks_completed_count FROM workflow") == [(2,)]


def test_cpu_time_is_the_tries_own(tmp_path, pool):
    hub, run_id = started_hub(tmp_path, resource_monitoring_interval=0.5)
    # Task 0 warms the worker up first, so a worker-cumulative figure would show in task 1.
    run_tries(hub, run_id, pool, burn_cpu, {0: (0.5,)})
    run_tries(hub, run_id, pool, burn_cpu, {1: (2.0,)})
    finish(hub, run_id, [0, 1])
    samples = final_samples(tmp_path)
    assert 0.4 <= samples[0][0] <= 0.9
    assert 1.8 <= samples[1][0] <= 2.5
    # Periodic samples were taken while the 2 s try ran, growing towards the final one.
    periodic = query(
        tmp_path,
        "SELECT psutil_process_time_user FROM resource WHERE task_id = 1 ORDER BY timestamp",
    )
    assert len(periodic) >= 2
    assert [p[0] for p in periodic] == sorted(p[0] for p in periodic)


def test_a_process_with_many_threads_still_samples_a_cpu_bound_try(tmp_path):
    """A thread pool's process may hold hundreds of threads. Looking for a try's child
    processes once read a file per thread, each waiting for the GIL the busy try held: 1.7 s
    for 200 threads, so a 2 s try got no periodic sample at all."""
    idle = threading.Event()
    threads = [threading.Thread(target=idle.wait, daemon=True) for _ in range(300)]
    for thread in threads:
        thread.start()
    try:
        hub, run_id = started_hub(tmp_path, resource_monitoring_interval=0.3)
        with cf.ThreadPoolExecutor(1) as pool:
            run_tries(hub, run_id, pool, burn_cpu, {0: (1.5,)})
        finish(hub, run_id, [0])
    finally:
        idle.set()
    rows = query(tmp_path, "SELECT count(*) FROM resource WHERE task_id = 0")
    assert rows[0][0] >= 3  # at least two periodic samples and the final one


def test_child_pids_of_one_thread_are_the_processes_it_started():
    started: dict[str, subprocess.Popen] = {}
    checked = threading.Event()
    ready = threading.Event()

    def start_and_stay() -> None:  # a child's thread must live: the kernel hands the
        started["other"] = subprocess.Popen(["sleep", "30"])  # children of a thread that
        ready.set()  # exits to another thread of the process
        checked.wait(30)

    other = threading.Thread(target=start_and_stay)
    other.start()
    ready.wait(30)
    other_tid = other.native_id
    try:
        started["mine"] = subprocess.Popen(["sleep", "30"])
        mine = procfs.child_pids(os.getpid(), threading.get_native_id())
        assert started["mine"].pid in mine and started["other"].pid not in mine
        assert started["other"].pid in (procfs.child_pids(os.getpid(), other_tid) or [])
        everyone = procfs.child_pids(os.getpid())
        assert {started["mine"].pid, started["other"].pid} <= set(everyone or [])
    finally:
        checked.set()
        other.join()
        for child in started.values():
            child.kill()
            child.wait()
    # A thread that has gone has no children (not: "this kernel has no children files").
    assert procfs.child_pids(os.getpid(), other_tid) == []


def test_peak_memory_of_a_try_is_recorded(tmp_path, pool):
    hub, run_id = started_hub(tmp_path, resource_monitoring_interval=30)
    run_tries(hub, run_id, pool, hold_memory, {0: (500,)})
    run_tries(hub, run_id, pool, nap, {1: (0.01,)})
    finish(hub, run_id, [0, 1])
    samples = final_samples(tmp_path)
    assert samples[0][1] >= 500 * 1024 * 1024
    assert samples[1][1] < 500 * 1024 * 1024  # the next try's peak is its own


def test_child_process_cpu_is_counted(tmp_path, spawn_pool):
    hub, run_id = started_hub(tmp_path, resource_monitoring_interval=30)
    command = "python3 -c 'import time; t=time.process_time()\nwhile time.process_time()-t<1: pass'"
    run_tries(hub, run_id, spawn_pool, shell, {0: (command,)})
    finish(hub, run_id, [0])
    user, system = query(
        tmp_path, "SELECT psutil_process_time_user, psutil_process_time_system FROM resource"
    )[0]
    assert user + system >= 0.9


def test_failing_try_still_ends_and_reports(tmp_path, pool):
    hub, run_id = started_hub(tmp_path)
    kernel_launch(hub, run_id, 0)
    call = hub.wrap(fail, run_id=run_id, task_id=0, try_id=0, executor_label="x")
    with pytest.raises(ValueError, match="boom"):
        pool.submit(call, "boom").result(timeout=30)
    finish(hub, run_id, [0], state="failed")
    states = query(tmp_path, "SELECT task_status_name FROM status ORDER BY timestamp")
    worker_and_end = [s[0] for s in states if s[0] in ("running", "running_ended", "failed")]
    assert worker_and_end == ["running", "running_ended", "failed"]
    assert query(tmp_path, "SELECT count(*) FROM resource") == [(1,)]


def test_resource_monitoring_disabled_keeps_states_and_tries(tmp_path, pool):
    hub, run_id = started_hub(tmp_path, resource_monitoring_enabled=False)
    run_tries(hub, run_id, pool, nap, {0: (0.01,)})
    finish(hub, run_id, [0])
    assert query(tmp_path, "SELECT count(*) FROM resource") == [(0,)]
    assert query(tmp_path, "SELECT count(*) FROM status WHERE task_status_name = 'running'") == [
        (1,)
    ]
    assert query(tmp_path, "SELECT hostname IS NOT NULL FROM try") == [(1,)]


def test_a_running_try_is_visible_within_a_second(tmp_path, spawn_pool):
    hub, run_id = started_hub(tmp_path, resource_monitoring_interval=0.3)
    kernel_launch(hub, run_id, 0)
    call = hub.wrap(nap, run_id=run_id, task_id=0, try_id=0, executor_label="x")
    future = spawn_pool.submit(call, 3.0)
    try:
        assert wait_for(
            lambda: (
                query(tmp_path, "SELECT count(*) FROM status WHERE task_status_name = 'running'")
                == [(1,)]
            ),
            timeout=3.0,
        )
        seen_running = time.monotonic()
        assert wait_for(
            lambda: query(tmp_path, "SELECT count(*) FROM resource")[0][0] >= 1, timeout=1.5
        )
        assert time.monotonic() - seen_running < 1.5
        assert query(tmp_path, "SELECT last_heartbeat FROM taskscope_run")[0][0]
    finally:
        future.result(timeout=30)
        finish(hub, run_id, [0])
