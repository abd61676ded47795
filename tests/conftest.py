"""Shared fixtures: a loaded workflow on each executor, cleaned up with no process left, and
the databases the read side is tested on (Parsl's, a synthetic taskscope one, empty, blank)."""

from __future__ import annotations

import shutil
from pathlib import Path

import psutil
import pytest
from fixture_paths import PARSL_FIXTURE_DB

import taskscope
from taskscope.config import Config
from taskscope.executors import HighThroughputExecutor, ThreadPoolExecutor
from taskscope.store.synthetic import create_database, standard_runs


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


@pytest.fixture(scope="session")
def parsl_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # A copy, so nothing can touch the shared fixture.
    target = tmp_path_factory.mktemp("parsl") / "monitoring.db"
    shutil.copy(PARSL_FIXTURE_DB, target)
    return target


@pytest.fixture(scope="session")
def taskscope_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("taskscope")
    outputs = folder / "outputs"
    outputs.mkdir()
    return create_database(folder / "monitoring.db", standard_runs(outputs))


@pytest.fixture(scope="session")
def empty_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return create_database(tmp_path_factory.mktemp("empty") / "monitoring.db", [])


@pytest.fixture(scope="session")
def blank_file_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A zero-byte file: what an unrelated tool may leave behind; it has no tables at all."""
    path = tmp_path_factory.mktemp("blank") / "monitoring.db"
    path.write_bytes(b"")
    return path
