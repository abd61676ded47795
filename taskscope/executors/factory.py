"""``HighThroughputExecutor(...)`` as Parsl users write it: an explicit factory.

Parsl's configs name one executor for every machine: ``HighThroughputExecutor(provider=...)``.
taskscope runs it on local worker processes with a ``LocalProvider`` (or none), and on
dask-jobqueue with a batch-scheduler provider (``SlurmProvider``, ``PBSProProvider``, ...):
this function chooses, with the same arguments, and returns the executor that will run. The
local executor class is ``taskscope.executors.high_throughput.executor.HighThroughputExecutor``;
the batch one is ``DaskExecutor`` (``DaskExecutor.for_htex`` maps the arguments;
docs/cluster.md).
"""

from __future__ import annotations

from typing import Any

from taskscope.executors.base import Executor
from taskscope.executors.high_throughput.executor import (
    HighThroughputExecutor as LocalHighThroughputExecutor,
)


def _runs_on_batch_scheduler(provider: Any) -> bool:
    try:
        from taskscope.cluster.base import BatchProvider
    except ImportError:  # the cluster extras are optional
        return False
    return isinstance(provider, BatchProvider)


class _FactoryMeta(type):
    """Makes the factory answer ``isinstance``/``issubclass`` like the class it builds:
    Parsl programs and tests check ``isinstance(ex, parsl.HighThroughputExecutor)``."""

    def __call__(cls, *args: Any, **kwargs: Any) -> Executor:
        provider = kwargs.get("provider", args[1] if len(args) > 1 else None)
        if provider is not None and _runs_on_batch_scheduler(provider):
            from taskscope.executors.dask import DaskExecutor

            return DaskExecutor.for_htex(*args, **kwargs)
        return LocalHighThroughputExecutor(*args, **kwargs)

    def __instancecheck__(cls, instance: Any) -> bool:
        return isinstance(instance, LocalHighThroughputExecutor)

    def __subclasscheck__(cls, subclass: type) -> bool:
        return issubclass(subclass, LocalHighThroughputExecutor)


class HighThroughputExecutor(metaclass=_FactoryMeta):  # Parsl's spelling
    """The executor for these ``HighThroughputExecutor`` arguments (see the module docstring).

    ``provider`` is the second positional argument, after ``label``, as in Parsl. Calling it
    returns the local executor or a ``DaskExecutor``; ``isinstance(x, HighThroughputExecutor)``
    is true of the local one."""
