"""Shared fixtures: a loaded workflow on each executor, cleaned up with no process left."""

from __future__ import annotations

import psutil
import pytest

import taskscope
from taskscope.config import Config
from taskscope.executors import HighThroughputExecutor, ThreadPoolExecutor


def make_executor(kind: str, label: str | None = None):
    if kind == "threads":
        return ThreadPoolExecutor(label=label or "threads", max_threads=4)
    return HighThroughputExecutor(label=label or "htex", max_workers_per_node=2)


def child_processes() -> list[psutil.Process]:
    return [
        p
        for p in psutil.Process().children(recursive=True)
        if p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    ]


@pytest.fixture(params=["threads", "htex"])
def executor_kind(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def load_workflow(tmp_path, executor_kind):
    """Call with Config keyword arguments; the config uses the parametrized executor."""
    loaded = []
    before = {p.pid for p in child_processes()}

    def load(**config_kwargs):
        config_kwargs.setdefault("executors", [make_executor(executor_kind)])
        dfk = taskscope.load(Config(run_dir=str(tmp_path / "runinfo"), **config_kwargs))
        loaded.append(dfk)
        return dfk

    yield load
    for dfk in loaded:
        dfk.cleanup()
    taskscope.clear()
    left = [p for p in child_processes() if p.pid not in before]
    assert left == [], f"processes outlived cleanup(): {left}"
