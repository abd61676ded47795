"""A thread-pool workflow per test, in the test's own run directory."""

from __future__ import annotations

import pytest

import taskscope
from taskscope.config import Config
from taskscope.executors import ThreadPoolExecutor


@pytest.fixture
def load_config(tmp_path, monkeypatch):
    """``load_config(**Config options)`` loads a config; the kernel is cleaned up after."""
    monkeypatch.chdir(tmp_path)
    loaded = []

    def load(**options):
        options.setdefault("executors", [ThreadPoolExecutor(max_threads=4)])
        options.setdefault("run_dir", str(tmp_path / "runinfo"))
        dfk = taskscope.load(Config(**options))
        loaded.append(dfk)
        return dfk

    yield load
    for dfk in loaded:
        dfk.cleanup()
    taskscope.clear()
