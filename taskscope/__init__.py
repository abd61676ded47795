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

__version__ = "0.1.0"

load = DataFlowKernelLoader.load
dfk = DataFlowKernelLoader.dfk
clear = DataFlowKernelLoader.clear
wait_for_current_tasks = DataFlowKernelLoader.wait_for_current_tasks

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
    "wait_for_current_tasks",
]
