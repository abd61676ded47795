"""A finished task is freed as soon as the user drops its future, by reference counting:
no reference cycle is left for the cyclic garbage collector, whose full collections walk
every object still waiting and cost most of the workflow's CPU in bursts of short tasks."""

from __future__ import annotations

import gc
import weakref

import pytest

from taskscope import join_app, python_app
from taskscope.errors import DependencyError


@python_app
def add(a, b=0):
    return a + b


@python_app
def fail():
    raise ValueError("boom")


@join_app
def fan_in(n):
    return [add(i) for i in range(n)]


@pytest.fixture
def no_cyclic_gc():
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def test_finished_tasks_are_freed_without_the_cyclic_collector(load_workflow, no_cyclic_gc):
    load_workflow()
    first = add(1)
    second = add(first, 2)  # a dependency
    joined = fan_in(3)  # a join app and the tasks it returned
    failed = fail()
    after_failure = add(failed)  # dep_fail
    assert second.result(timeout=30) == 3
    assert joined.result(timeout=30) == [0, 1, 2]
    with pytest.raises(ValueError):
        failed.result(timeout=30)
    with pytest.raises(DependencyError):
        after_failure.result(timeout=30)
    assert first.task_record.app_fu is first  # still reachable while the user holds it
    futures = [first, second, joined, failed, after_failure]
    refs = [weakref.ref(f) for f in futures]
    del first, second, joined, failed, after_failure, futures
    alive = [ref() for ref in refs if ref() is not None]
    assert alive == [], f"freed only by the cyclic collector: {alive}"


def test_without_garbage_collect_dfk_tasks_keeps_every_future(load_workflow):
    """Config(garbage_collect=False): as in Parsl, dfk.tasks keeps each record with its
    future, even after the user dropped the future."""
    dfk = load_workflow(garbage_collect=False)
    future = add(1, 2)
    assert future.result(timeout=30) == 3
    tid = future.tid
    del future
    gc.collect()
    assert dfk.tasks[tid]["app_fu"].result() == 3
