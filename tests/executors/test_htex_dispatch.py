"""HighThroughputExecutor dispatch: no worker idles while a task waits.

The figures come from the tasks themselves (the pid of the worker that ran each one and its
own start and end times), never from how long the test took.
"""

from __future__ import annotations

import collections
import time

import pytest

import taskscope
from taskscope import python_app


@pytest.fixture
def executor_kind():
    return "htex"


@python_app
def noop():
    return None


@python_app
def burn(seconds):
    """CPU-bound for ``seconds`` of wall time; returns (worker pid, start, end)."""
    import os
    import time

    start = time.time()
    total = 0
    while time.time() - start < seconds:
        total += sum(range(500))
    return os.getpid(), start, time.time()


@python_app
def stamp():
    import os
    import time

    return os.getpid(), time.time()


def wait_for_workers(n: int, timeout: float = 60.0) -> None:
    executor = taskscope.dfk().executors["htex"]
    deadline = time.monotonic() + timeout
    while executor.connected_workers < n:
        assert time.monotonic() < deadline, f"only {executor.connected_workers} workers started"
        time.sleep(0.05)


def seconds_both_busy(runs: list[tuple[int, float, float]]) -> float:
    """How long two tasks ran at the same moment, from the tasks' own clocks."""
    events = sorted([(start, 1) for _, start, _ in runs] + [(end, -1) for _, _, end in runs])
    both, running, last = 0.0, 0, None
    for moment, change in events:
        if running >= 2 and last is not None:
            both += moment - last
        running += change
        last = moment
    return both


def test_long_tasks_right_after_start_use_the_worker_that_starts_late(load_workflow):
    # As in a workflow that starts at once: the first worker up takes every no-op and then
    # all six long tasks before the second one has said hello. It must give them back.
    load_workflow()
    for f in [noop() for _ in range(2000)]:
        f.result(timeout=60)
    runs = [f.result(timeout=120) for f in [burn(1.0) for _ in range(6)]]
    per_worker = collections.Counter(pid for pid, _, _ in runs)
    assert len(per_worker) == 2, per_worker
    assert seconds_both_busy(runs) > 1.0, runs


def test_long_tasks_after_tiny_ones_run_on_both_workers(load_workflow):
    load_workflow()
    wait_for_workers(2)
    # 2,000 no-ops teach the executor that tasks are tiny: it then sends them in big batches.
    for f in [noop() for _ in range(2000)]:
        f.result(timeout=60)
    runs = [f.result(timeout=120) for f in [burn(1.0) for _ in range(6)]]
    per_worker = collections.Counter(pid for pid, _, _ in runs)
    assert sorted(per_worker.values()) == [3, 3], per_worker
    # Side by side: ideally 3 s with both busy (two workers, three 1 s tasks each).
    assert seconds_both_busy(runs) > 2.0, runs


def test_short_tasks_do_not_wait_behind_a_long_one(load_workflow):
    load_workflow()
    wait_for_workers(2)
    for f in [noop() for _ in range(2000)]:
        f.result(timeout=60)
    # One long task first in line, then many short ones, submitted together: the worker that
    # takes the long one gives back the short ones queued behind it.
    long_future = burn(3.0)
    short = [stamp() for _ in range(200)]
    long_pid, _, long_end = long_future.result(timeout=120)
    done = [f.result(timeout=120) for f in short]
    assert all(pid != long_pid for pid, _ in done), collections.Counter(p for p, _ in done)
    assert max(finished for _, finished in done) < long_end


def test_prefetch_capacity_zero_is_the_default_and_validated():
    from taskscope.executors import HighThroughputExecutor

    assert HighThroughputExecutor().prefetch_capacity == 0
    with pytest.raises(ValueError, match="prefetch_capacity"):
        HighThroughputExecutor(prefetch_capacity=-1)


def test_calls_held_behind_many_short_tasks_go_to_a_worker_that_frees_up(tmp_path):
    """Tasks of 8 ms (each below the long-task threshold) all sent to one worker on a stale
    tiny-task estimate: after ~20 ms it returns the calls it still holds and the other
    worker, once it can take work, runs a fair share."""
    import os

    from taskscope.executors.high_throughput.executor import HighThroughputExecutor

    def spin(seconds):
        import os
        import time

        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            pass
        return os.getpid()

    htex = HighThroughputExecutor(label="htex", max_workers_per_node=2)
    htex.prepare(str(tmp_path))
    with htex:
        htex.start()
        deadline = time.monotonic() + 60
        while htex.connected_workers < 2:
            assert time.monotonic() < deadline, "workers did not start"
            time.sleep(0.05)
        for f in [htex.submit(spin, {}, 0) for _ in range(2000)]:
            f.result(timeout=60)  # the estimate is now "tiny": batches of up to 1,024
        _first, second = htex._workers
        second.ready = False  # as if still starting: everything goes to the first
        futures = [htex.submit(spin, {}, 0.008) for _ in range(100)]
        deadline = time.monotonic() + 60
        while htex._queue:  # every call sent, all of them to the first worker
            assert time.monotonic() < deadline, "the calls were not sent"
            time.sleep(0.001)
        assert not second.outstanding
        second.ready = True
        htex._wake()
        pids = collections.Counter(f.result(timeout=120) for f in futures)
    assert pids[second.proc.pid] >= 25, pids
    assert htex.tasks_given_back >= 50
    assert os.getpid() not in pids
