"""DependencyError and JoinError as Parsl has them: "task N" descriptions, the root cause as
``__cause__``, a message naming the chain; a retry_handler's own exception is the task's."""

from __future__ import annotations

import pickle

import pytest

import taskscope
from taskscope import join_app, python_app
from taskscope.config import Config
from taskscope.dataflow.errors import DependencyError, JoinError
from taskscope.dataflow.states import States
from taskscope.executors import ThreadPoolExecutor


@pytest.fixture
def dfk(tmp_path):
    loaded = taskscope.load(Config(executors=[ThreadPoolExecutor()], run_dir=str(tmp_path)))
    yield loaded
    loaded.cleanup()


def _load(tmp_path, **options):
    return taskscope.load(
        Config(executors=[ThreadPoolExecutor()], run_dir=str(tmp_path), **options)
    )


@python_app
def broken(message):
    raise ValueError(message)


@python_app
def inc(x):
    return x + 1


@join_app
def join_one(message):
    return broken(message)


@join_app
def join_many():
    return [inc(1), broken("second"), broken("third")]


def test_dependency_error_names_tasks_and_chains_the_root_cause(dfk):
    root = broken("root cause")
    middle = inc(root)
    leaf = inc(middle)
    with pytest.raises(DependencyError) as info:
        leaf.result()
    err = info.value
    assert err.dependent_exceptions_tids[0][1] == f"task {middle.tid}"
    assert isinstance(err.dependent_exceptions_tids[0][0], DependencyError)
    assert isinstance(err.__cause__, ValueError) and str(err.__cause__) == "root cause"
    assert err.__cause__ is root.exception()
    assert str(err).startswith(f"Dependency failure for task {leaf.tid}. ")
    assert f"via task {middle.tid} <- task {root.tid}" in str(err)
    assert "ValueError: root cause" in str(err)
    assert middle.task_record.status is States.dep_fail


def test_several_failed_dependencies_are_all_kept(dfk):
    a, b = broken("a"), broken("b")
    with pytest.raises(DependencyError) as info:
        python_app(lambda x, y: x + y)(a, b).result()
    tids = [t for _, t in info.value.dependent_exceptions_tids]
    assert tids == [f"task {a.tid}", f"task {b.tid}"]
    assert "(+ others)" in str(info.value)


def test_dependency_error_pickles(dfk):
    fut = inc(broken("x"))
    err = fut.exception()
    copy = pickle.loads(pickle.dumps(err))
    assert isinstance(copy, DependencyError)
    assert str(copy) == str(err)


def test_a_join_app_whose_inner_task_fails_raises_join_error(dfk):
    fut = join_one("inner broke")
    with pytest.raises(JoinError) as info:
        fut.result()
    assert isinstance(info.value.__cause__, ValueError)
    assert str(info.value.__cause__) == "inner broke"
    assert str(info.value).startswith(f"Join failure for task {fut.tid}.")
    assert fut.task_record.status is States.failed


def test_join_error_lists_every_failed_inner_task(dfk):
    fut = join_many()
    err = fut.exception()
    assert isinstance(err, JoinError)
    assert [str(e) for e, _ in err.dependent_exceptions_tids] == ["second", "third"]
    assert all(t.startswith("task ") for _, t in err.dependent_exceptions_tids)


class HandlerBroke(Exception):
    pass


def test_a_retry_handler_exception_is_reported_as_the_tasks_exception(tmp_path):
    seen = []

    def handler(exc, record):
        seen.append(type(exc))
        raise HandlerBroke("the handler itself failed")

    dfk = _load(tmp_path, retries=3, retry_handler=handler)
    try:
        fut = broken("app failure")
        with pytest.raises(HandlerBroke) as info:
            fut.result()
        assert seen == [ValueError]  # not retried after the handler failed
        assert isinstance(info.value.__context__, ValueError)
        assert fut.task_record.fail_count == 1
    finally:
        dfk.cleanup()


def test_calling_an_app_without_a_config_says_must_first_load_config():
    taskscope.clear()
    with pytest.raises(taskscope.errors.NoDataFlowKernelError, match="Must first load config"):
        inc(1)
