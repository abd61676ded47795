"""Dependencies, retries, dep_fail, memoization and join apps, on both executors."""

from __future__ import annotations

import os

import pytest

import taskscope
from taskscope import File, join_app, python_app
from taskscope.dataflow.states import States
from taskscope.errors import DependencyError, JoinError


@python_app
def add(a, b=0):
    return a + b


@python_app
def total(inputs=()):
    return sum(inputs)


@python_app
def fail(message):
    raise ValueError(message)


@python_app
def count_call(counter_dir, x):
    """Leaves one file per run, so a test can count how often the task really ran."""
    import os
    import uuid

    open(os.path.join(counter_dir, uuid.uuid4().hex), "w").close()
    return x * 10


@python_app
def flaky(counter_dir, fail_times):
    """Fails on its first ``fail_times`` tries."""
    import os
    import uuid

    tries = len(os.listdir(counter_dir))
    open(os.path.join(counter_dir, uuid.uuid4().hex), "w").close()
    if tries < fail_times:
        raise RuntimeError(f"flaky failure number {tries + 1}")
    return tries


def runs(counter_dir) -> int:
    return len(os.listdir(counter_dir))


@pytest.fixture
def calls(tmp_path):
    """An empty directory where tasks leave one file per run."""
    path = tmp_path / "calls"
    path.mkdir()
    return path


def test_diamond_dag(load_workflow):
    load_workflow()
    top = add(1)
    left = add(top, 10)
    right = add(top, b=100)
    bottom = add(left, b=right)
    assert bottom.result() == (1 + 10) + (1 + 100)
    assert [f.task_record.status for f in (top, left, right, bottom)] == [States.exec_done] * 4
    assert bottom.task_record.depends_ids == [left.tid, right.tid]


def test_fan_out_fan_in_of_1000_tasks(load_workflow):
    load_workflow()
    parts = [add(i) for i in range(1000)]
    assert total(inputs=parts).result() == sum(range(1000))


def test_data_futures_chain_through_inputs(load_workflow, tmp_path):
    load_workflow()

    @python_app
    def write(text, outputs=()):
        with open(outputs[0], "w") as f:
            f.write(text)

    @python_app
    def read(inputs=()):
        with open(inputs[0]) as f:
            return f.read()

    written = write("hello", outputs=[File(str(tmp_path / "hello.txt"))])
    out = written.outputs[0]
    assert out.tid == written.tid
    assert read(inputs=[out]).result() == "hello"
    assert out.result().filepath == str(tmp_path / "hello.txt")


def test_retries_rerun_with_new_try_ids_and_keep_each_failure(load_workflow, calls):
    load_workflow(retries=2)
    fut = flaky(str(calls), fail_times=2)
    assert fut.result() == 2
    record = fut.task_record
    assert record.status is States.exec_done
    assert record.try_id == 2 and record.fail_count == 2
    assert [f.try_id for f in record.try_failures] == [0, 1]
    assert "flaky failure number 1" in str(record.try_failures[0].exception)
    assert "RuntimeError: flaky failure number 2" in record.try_failures[1].traceback
    assert "flaky" in record.try_failures[1].traceback  # the function's frame is there


def test_retries_exhausted_fail_the_task(load_workflow, calls):
    load_workflow(retries=1)
    fut = flaky(str(calls), fail_times=5)
    with pytest.raises(RuntimeError, match="flaky failure number 2"):
        fut.result()
    assert fut.task_record.status is States.failed
    assert fut.task_record.fail_count == 2 and runs(calls) == 2


def test_retry_handler_sets_the_cost_of_a_failure(load_workflow, calls):
    load_workflow(retries=3, retry_handler=lambda exc, record: 2)
    fut = flaky(str(calls), fail_times=5)
    with pytest.raises(RuntimeError):
        fut.result()
    assert runs(calls) == 2  # costs 2 then 4: the second failure exceeds 3


def test_dep_fail_chain_never_runs_dependents(load_workflow, calls):
    load_workflow()
    first = fail("broken")
    second = count_call(str(calls), first)
    third = add(second, 1)
    with pytest.raises(ValueError, match="broken"):
        first.result()
    with pytest.raises(DependencyError) as info:
        third.result()
    assert info.value.dependent_exceptions_tids[0][1] == f"task {second.tid}"
    assert second.task_record.status is States.dep_fail
    assert third.task_record.status is States.dep_fail
    assert runs(calls) == 0
    with pytest.raises(DependencyError, match=f"via task {first.tid}"):
        second.result()


def test_memoized_call_returns_the_first_result_without_running(load_workflow, calls):
    load_workflow()
    memo = python_app(cache=True)(count_call.func)
    first = memo(str(calls), 4)
    assert first.result() == 40
    again = memo(str(calls), 4)
    assert again.result() == 40
    assert again.task_record.status is States.memo_done
    assert again.task_record.hashsum == first.task_record.hashsum
    assert memo(str(calls), 5).result() == 50
    assert runs(calls) == 2


def test_memoization_needs_cache_and_app_cache(load_workflow, calls):
    load_workflow(app_cache=False)
    memo = python_app(cache=True)(count_call.func)
    memo(str(calls), 1).result()
    assert memo(str(calls), 1).result() == 10
    count_call(str(calls), 1).result()
    count_call(str(calls), 1).result()
    assert runs(calls) == 4


def test_memoization_uses_resolved_dependency_values(load_workflow, calls):
    load_workflow()
    memo = python_app(cache=True)(count_call.func)
    a = memo(str(calls), add(1, 1))
    a.result()
    b = memo(str(calls), 2)
    assert b.result() == 20 and b.task_record.status is States.memo_done


@join_app
def fan(n):
    return [add(i, 1) for i in range(n)]


@join_app
def chain(x):
    return add(add(x, 1), 1)


@join_app
def join_broken():
    return [add(1), fail("inner")]


def test_join_app_completes_with_the_futures_it_returns(load_workflow):
    load_workflow()
    assert fan(4).result() == [1, 2, 3, 4]
    fut = chain(5)
    assert fut.result() == 7
    assert fut.task_record.status is States.exec_done
    assert len(fut.task_record.joins) == 1


def test_join_app_failure_names_the_inner_tasks(load_workflow):
    load_workflow()
    with pytest.raises(JoinError, match="Join failure for task"):
        join_broken().result()


def test_wait_for_current_tasks(load_workflow):
    load_workflow()
    futs = [add(i) for i in range(50)]
    taskscope.wait_for_current_tasks()
    assert all(f.done() for f in futs)


def test_states_have_parsl_names_and_numbers():
    assert {s.name: s.value for s in States} == {
        "unsched": -1,
        "pending": 0,
        "running": 2,
        "exec_done": 3,
        "failed": 4,
        "dep_fail": 5,
        "launched": 7,
        "fail_retryable": 8,
        "memo_done": 9,
        "joining": 10,
        "running_ended": 11,
    }


def test_a_long_dep_fail_chain_does_not_hit_the_recursion_limit(load_workflow):
    load_workflow()
    head = fail("root cause")
    tail = head
    for _ in range(3000):
        tail = add(tail, 1)
    with pytest.raises(DependencyError):
        tail.result(timeout=60)
    assert tail.task_record.status is States.dep_fail


@python_app
def spin(seconds):
    import time

    end = time.time() + seconds
    while time.time() < end:
        pass
    return "finished"


def test_python_app_walltime_interrupts_the_function(load_workflow):
    from taskscope.errors import AppTimeout

    load_workflow()
    with pytest.raises(AppTimeout, match=r"walltime of 0.3 s"):
        spin(30, walltime=0.3).result(timeout=20)
    assert spin(0.01, walltime=10).result(timeout=20) == "finished"


def test_app_future_exposes_the_task(load_workflow):
    load_workflow()
    fut = add(1, 2)
    assert fut.result() == 3 and fut.done() and fut.exception() is None
    assert isinstance(fut.tid, int)
    assert fut.task_record["status"] is States.exec_done
    assert fut.task_status() == "exec_done"
    assert fut.task_record["func_name"] == "add"
    failed = fail("x")
    assert isinstance(failed.exception(timeout=30), ValueError)
