"""Executors: where ready tasks run."""

from taskscope.executors.base import Executor
from taskscope.executors.dask import DaskExecutor  # imports Dask only when it starts
from taskscope.executors.high_throughput.executor import HighThroughputExecutor
from taskscope.executors.threads import ThreadPoolExecutor

__all__ = ["DaskExecutor", "Executor", "HighThroughputExecutor", "ThreadPoolExecutor"]
