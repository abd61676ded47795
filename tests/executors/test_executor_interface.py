"""The declared executor interface (executors/base.py) is all the kernel needs: an executor
written against it alone runs a workflow, with monitoring; the kernel tells a
``ScalingExecutor`` whether blocks may scale; ``HighThroughputExecutor(...)`` is a factory."""

from __future__ import annotations

import concurrent.futures
import sqlite3
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

import pytest

import taskscope
from taskscope import python_app
from taskscope.config import Config
from taskscope.executors import HighThroughputExecutor, ScalingExecutor
from taskscope.executors.base import Executor
from taskscope.executors.high_throughput import executor as htex_module
from taskscope.executors.high_throughput.serialize import _ships_once
from taskscope.monitoring import MonitoringHub
from taskscope.monitoring.wrapper import HubTarget
from taskscope.ship_once import ShipOnce


class InlineExecutor(Executor):
    """Runs each task at once in the submitting thread: only the declared interface."""

    def __init__(self, label: str = "inline") -> None:
        super().__init__(label)
        self.calls: list[str] = []
        self.prepared: tuple[str, str | None, bool] | None = None

    def prepare(
        self,
        run_dir: str,
        run_id: str | None = None,
        monitoring_send: Callable[[Any], None] | None = None,
    ) -> None:
        super().prepare(run_dir, run_id, monitoring_send)
        self.calls.append("prepare")
        self.prepared = (run_dir, run_id, monitoring_send is not None)

    def start(self) -> None:
        self.calls.append("start")

    def submit(
        self,
        func: Callable[..., Any],
        resource_specification: dict[str, Any],
        *args: Any,
        **kwargs: Any,
    ) -> Future:
        self.calls.append("submit")
        future: Future = concurrent.futures.Future()
        try:
            future.set_result(func(*args, **kwargs))
        except Exception as e:  # noqa: BLE001 - the task's failure goes to its future
            future.set_exception(e)
        return future

    def shutdown(self) -> None:
        self.calls.append("shutdown")


class FixedOrScaling(InlineExecutor, ScalingExecutor):
    def __init__(self, label: str = "scaling") -> None:
        super().__init__(label)
        self.adaptive = True
        self.told: list[bool] = []

    def set_adaptive(self, enabled: bool) -> None:
        self.told.append(enabled)
        super().set_adaptive(enabled)


@python_app
def add(a: int, b: int) -> int:
    return a + b


def test_an_executor_written_to_the_interface_runs_a_monitored_workflow(tmp_path) -> None:
    ex = InlineExecutor()
    db = tmp_path / "monitoring.db"
    config = Config(
        executors=[ex],
        run_dir=str(tmp_path / "runinfo"),
        monitoring=MonitoringHub(logging_endpoint=f"sqlite:///{db}"),
    )
    with taskscope.load(config) as dfk:
        assert add(add(1, 2), 3).result() == 6
        run_id = dfk.run_id
    taskscope.clear()
    assert ex.calls[:2] == ["prepare", "start"] and ex.calls[-1] == "shutdown"
    assert ex.calls.count("submit") == 2
    assert ex.prepared is not None
    run_dir, prepared_run_id, has_send = ex.prepared
    assert prepared_run_id == run_id and has_send and run_dir.startswith(str(tmp_path))
    with sqlite3.connect(db) as conn:
        done = conn.execute(
            "SELECT task_id FROM status WHERE run_id = ? AND task_status_name = 'exec_done' "
            "ORDER BY task_id",
            (run_id,),
        ).fetchall()
    assert done == [(0,), (1,)]


@pytest.mark.parametrize(("strategy", "adaptive"), [("none", False), ("simple", True)])
def test_the_kernel_tells_a_scaling_executor_the_strategy(tmp_path, strategy, adaptive) -> None:
    ex = FixedOrScaling()
    with taskscope.load(Config(executors=[ex], run_dir=str(tmp_path), strategy=strategy)):
        assert add(2, 2).result() == 4
    taskscope.clear()
    assert ex.told == [adaptive] and ex.adaptive is adaptive
    # Without monitoring, prepare() still gives the run directory and no channel.
    assert ex.prepared is not None and ex.prepared[1:] == (None, False)


def test_htex_factory_returns_the_local_executor_for_a_local_provider() -> None:
    ex = HighThroughputExecutor(label="local", max_workers_per_node=1)
    assert type(ex) is htex_module.HighThroughputExecutor
    assert not hasattr(htex_module.HighThroughputExecutor, "__new__") or (
        htex_module.HighThroughputExecutor.__new__ is object.__new__
    )


def test_the_monitoring_target_is_declared_ship_once() -> None:
    assert issubclass(HubTarget, ShipOnce)
    assert _ships_once(HubTarget)
    assert not _ships_once(dict)
