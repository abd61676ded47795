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

from taskscope.app.app import bash_app, join_app, python_app
from taskscope.config import Config
from taskscope.data_provider.files import File
from taskscope.dataflow.dflow import AUTO_LOGNAME, DataFlowKernel, DataFlowKernelLoader
from taskscope.dataflow.states import States
from taskscope.log_utils import set_file_logger, set_stream_logger

__version__ = "0.1.0"

load = DataFlowKernelLoader.load
dfk = DataFlowKernelLoader.dfk
clear = DataFlowKernelLoader.clear
wait_for_current_tasks = DataFlowKernelLoader.wait_for_current_tasks


def __getattr__(name: str) -> object:
    # Parsl exports these at its root; imported on first use (HTEX brings in ZeroMQ).
    if name in ("HighThroughputExecutor", "ThreadPoolExecutor"):
        from taskscope import executors

        return getattr(executors, name)
    raise AttributeError(f"module 'taskscope' has no attribute {name!r}")


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
