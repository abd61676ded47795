"""``fut[key]`` and ``fut.attr`` on an AppFuture give futures, as in Parsl."""

from __future__ import annotations

from concurrent.futures import Future

import pytest

from taskscope import python_app
from taskscope.dataflow.futures import AppFuture
from taskscope.dataflow.states import States


class Point:
    def __init__(self) -> None:
        self.x, self.y = 3, 4


@python_app
def make_dict():
    return {"a": "X", "b": "Y"}


@python_app
def make_point():
    return Point()


@python_app
def passthrough(v):
    return v


@python_app
def fail():
    raise RuntimeError("parent failed")


def test_getitem_and_getattr_give_futures_of_the_parts(load_config):
    load_config()
    item = make_dict()["a"]
    attr = make_point().y
    assert isinstance(item, AppFuture) and isinstance(attr, AppFuture)
    assert item.result() == "X"
    assert attr.result() == 4
    assert passthrough(["p", "q"])[1].result() == "q"
    assert passthrough(("p", "q"))[0].result() == "p"


def test_a_lifted_future_is_a_task_of_its_own(load_config):
    dfk = load_config()
    parent = make_dict()
    child = parent["b"]
    assert child.tid != parent.tid
    assert child.result() == "Y"
    assert child.task_record.depends == [parent]
    assert child.task_record.executor == "_taskscope_internal"
    assert child.task_record.status is States.exec_done
    assert dfk.task_state_counts[States.exec_done] == 2


def test_lifting_does_not_wait_for_the_parent(load_config):
    load_config()
    gate = Future()
    top = passthrough(gate)
    lifted = top["a"]  # would hang here if lifting called result()
    assert not lifted.done()
    gate.set_result({"a": "late"})
    assert lifted.result(timeout=30) == "late"


def test_a_bad_key_or_attribute_fails_the_lifted_future(load_config):
    load_config()
    assert isinstance(make_dict()["missing"].exception(timeout=30), KeyError)
    assert isinstance(make_point().z.exception(timeout=30), AttributeError)


def test_a_failed_parent_fails_the_lifted_future_with_a_dependency_error(load_config):
    from taskscope.dataflow.errors import DependencyError

    load_config()
    exc = fail()["a"].exception(timeout=30)
    assert isinstance(exc, DependencyError)
    assert isinstance(exc.__cause__, RuntimeError)


def test_underscore_names_are_not_lifted(load_config):
    load_config()
    fut = make_point()
    with pytest.raises(AttributeError):
        fut._private  # noqa: B018
    assert not hasattr(fut, "__array__")
    fut.result()
    assert fut.task_record.dfk.task_count == 1  # no task was made for those
