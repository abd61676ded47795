"""taskscope: Parsl-compatible parallel workflows with first-class monitoring.

import taskscope
from taskscope import python_app
from taskscope.config import Config

@python_app
def double(x):
    return 2 * x

with taskscope.load(Config()):
    print(double(21).result())
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# Parsl's names are loaded on first use (PEP 562), not at import: the dashboard and the
# read-only CLI import ``taskscope.store`` / ``taskscope.visualize``, and Python runs this
# module first; importing the kernel here loaded ZeroMQ, the executors and the capture side
# into every read-only process (``import taskscope.visualize.app`` loaded 71 taskscope
# modules, 50 of them kernel, executors and capture side; docs/architecture.md decision 21).
# ``tests/test_import_boundaries.py`` holds the line.
_LAZY: dict[str, tuple[str, str]] = {
    "bash_app": ("taskscope.app.app", "bash_app"),
    "join_app": ("taskscope.app.app", "join_app"),
    "python_app": ("taskscope.app.app", "python_app"),
    "Config": ("taskscope.config", "Config"),
    "File": ("taskscope.data_provider.files", "File"),
    "AUTO_LOGNAME": ("taskscope.dataflow.dflow", "AUTO_LOGNAME"),
    "DataFlowKernel": ("taskscope.dataflow.dflow", "DataFlowKernel"),
    "States": ("taskscope.dataflow.states", "States"),
    "HighThroughputExecutor": ("taskscope.executors", "HighThroughputExecutor"),
    "ThreadPoolExecutor": ("taskscope.executors", "ThreadPoolExecutor"),
    "set_file_logger": ("taskscope.log_utils", "set_file_logger"),
    "set_stream_logger": ("taskscope.log_utils", "set_stream_logger"),
}
# The loader's static methods, as ``parsl.load`` / ``parsl.dfk`` / ``parsl.clear``.
_LOADER_METHODS = ("load", "dfk", "clear", "wait_for_current_tasks")

if TYPE_CHECKING:
    from taskscope.app.app import bash_app, join_app, python_app
    from taskscope.config import Config
    from taskscope.data_provider.files import File
    from taskscope.dataflow.dflow import AUTO_LOGNAME, DataFlowKernel, DataFlowKernelLoader
    from taskscope.dataflow.states import States
    from taskscope.executors import HighThroughputExecutor, ThreadPoolExecutor
    from taskscope.log_utils import set_file_logger, set_stream_logger

    load = DataFlowKernelLoader.load
    dfk = DataFlowKernelLoader.dfk
    clear = DataFlowKernelLoader.clear
    wait_for_current_tasks = DataFlowKernelLoader.wait_for_current_tasks


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module_name, attribute = _LAZY[name]
        value = getattr(importlib.import_module(module_name), attribute)
    elif name in _LOADER_METHODS:
        loader = importlib.import_module("taskscope.dataflow.dflow").DataFlowKernelLoader
        value = getattr(loader, name)
    else:
        # ``taskscope.dataflow`` and friends work as attributes without an explicit import,
        # as they did when this module imported everything.
        try:
            value = importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{name}":
                raise
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


__all__ = [
    "AUTO_LOGNAME",
    "Config",
    "DataFlowKernel",
    "File",
    "HighThroughputExecutor",
    "States",
    "ThreadPoolExecutor",
    "bash_app",
    "clear",
    "dfk",
    "join_app",
    "load",
    "python_app",
    "set_file_logger",
    "set_stream_logger",
    "wait_for_current_tasks",
]
