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
import logging
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# Parsl's names are loaded on first use (PEP 562), not at import: the dashboard and the
# read-only CLI import ``taskscope.store`` / ``taskscope.visualize``, and Python runs this
# module first; importing the kernel here loaded ZeroMQ, the executors and the capture side
# into every read-only process (``import taskscope.visualize.app``: 71 taskscope modules
# before, 21 now).
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
}
# The loader's static methods, as ``parsl.load`` / ``parsl.dfk`` / ``parsl.clear``.
_LOADER_METHODS = ("load", "dfk", "clear", "wait_for_current_tasks")

if TYPE_CHECKING:
    from taskscope.app.app import bash_app, join_app, python_app
    from taskscope.config import Config
    from taskscope.data_provider.files import File
    from taskscope.dataflow.dflow import AUTO_LOGNAME, DataFlowKernel, DataFlowKernelLoader
    from taskscope.dataflow.states import States

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


def _log_to(handler: logging.Handler, name: str, level: int, fmt: str | None) -> logging.Logger:
    handler.setFormatter(
        logging.Formatter(fmt or "%(asctime)s %(name)s:%(lineno)d %(levelname)s: %(message)s")
    )
    logger = logging.getLogger(name)
    logger.setLevel(level)
    logger.addHandler(handler)
    return logger


def set_stream_logger(
    name: str = "taskscope", level: int = logging.DEBUG, format_string: str | None = None
) -> logging.Logger:
    """Log ``name`` to stderr at ``level`` (as ``parsl.set_stream_logger``)."""
    return _log_to(logging.StreamHandler(), name, level, format_string)


def set_file_logger(
    filename: str,
    name: str = "taskscope",
    level: int = logging.DEBUG,
    format_string: str | None = None,
) -> logging.Logger:
    """Log ``name`` to ``filename`` at ``level`` (as ``parsl.set_file_logger``)."""
    return _log_to(logging.FileHandler(filename), name, level, format_string)


__all__ = [
    "AUTO_LOGNAME",
    "Config",
    "DataFlowKernel",
    "File",
    "States",
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
