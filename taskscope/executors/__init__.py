"""Executors: where ready tasks run.

``HighThroughputExecutor`` here is a factory (``executors/factory.py``), not the class: with a
batch-scheduler provider it returns a ``DaskExecutor``, as Parsl configs expect."""

from taskscope.executors.base import Executor, ScalingExecutor
from taskscope.executors.dask import DaskExecutor  # imports Dask only when it starts
from taskscope.executors.factory import HighThroughputExecutor
from taskscope.executors.threads import ThreadPoolExecutor

__all__ = [
    "DaskExecutor",
    "Executor",
    "HighThroughputExecutor",
    "ScalingExecutor",
    "ThreadPoolExecutor",
]
