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

import logging

from taskscope.app.app import bash_app, join_app, python_app
from taskscope.config import Config
from taskscope.data_provider.files import File
from taskscope.dataflow.dflow import AUTO_LOGNAME, DataFlowKernel, DataFlowKernelLoader
from taskscope.dataflow.states import States

__version__ = "0.1.0"

load = DataFlowKernelLoader.load
dfk = DataFlowKernelLoader.dfk
clear = DataFlowKernelLoader.clear
wait_for_current_tasks = DataFlowKernelLoader.wait_for_current_tasks


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
