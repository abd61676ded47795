"""The executor interface the DataFlowKernel uses (the shape of Parsl's ``ParslExecutor``).

What the kernel needs from an executor, and nothing more: ``label``; ``prepare()`` with the
run's directory and monitoring channel, then ``start()``; ``submit()`` for each ready task;
``outstanding`` for status displays; ``shutdown()`` once. An executor whose blocks can scale
with the load is a ``ScalingExecutor``: the kernel tells it whether ``Config(strategy=...)``
allows scaling. A new executor subclasses one of these two (see CONTRIBUTING.md).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any


class TaskCount(int):
    """A count of tasks that is also callable: ``ex.outstanding`` (taskscope's property) and
    ``ex.outstanding()`` (Parsl's method) both give it."""

    def __call__(self) -> int:
        return int(self)


class Executor(ABC):
    """Runs ready tasks somewhere and reports each through a ``concurrent.futures.Future``.

    The DataFlowKernel calls ``prepare()`` before ``start()``: executors use ``run_dir`` for
    their logs and, when monitoring is on, ``run_id`` and ``monitoring_send`` for node/block
    messages.
    """

    label: str

    def __init__(self, label: str):
        if not isinstance(label, str) or not label:
            raise ValueError(
                f"{type(self).__name__}(label=...) must be a non-empty str, got {label!r}"
            )
        self.label = label
        self.run_dir = "."
        self.run_id: str | None = None
        # Set by the DFK when monitoring is on: hub.send, for NodeInfo/BlockInfo messages.
        self.monitoring_send: Callable[[Any], None] | None = None

    def prepare(
        self,
        run_dir: str,
        run_id: str | None = None,
        monitoring_send: Callable[[Any], None] | None = None,
    ) -> None:
        """The run this executor serves (called by the kernel before ``start()``).

        ``run_id`` and ``monitoring_send`` are None when monitoring is off."""
        self.run_dir = run_dir
        self.run_id = run_id
        self.monitoring_send = monitoring_send

    @abstractmethod
    def start(self) -> None:
        """Get ready to run tasks (start threads or worker processes)."""

    @abstractmethod
    def submit(
        self,
        func: Callable[..., Any],
        resource_specification: dict[str, Any],
        *args: Any,
        **kwargs: Any,
    ) -> Future:
        """Run ``func(*args, **kwargs)``; the Future gets its result or exception."""

    @abstractmethod
    def shutdown(self) -> None:
        """Stop; afterwards no thread or process of this executor is left running."""

    @property
    def outstanding(self) -> int:
        """Tasks submitted and not yet finished (for status displays). A ``TaskCount``: an
        int that can also be called, as Parsl's ``outstanding()`` method is."""
        return TaskCount(0)

    def monitor_resources(self) -> bool:
        """Parsl's hook: whether tasks on this executor get resource samples. taskscope
        samples on every executor (one sampler per worker process, or per thread pool)."""
        return True

    def __enter__(self) -> Executor:  # noqa: PYI034
        return self

    def __exit__(self, *exc_info: object) -> None:
        # Parsl's executors are context managers that shut down on exit (and never swallow
        # the exception that ended the block).
        self.shutdown()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(label={self.label!r})"


class ScalingExecutor(Executor):
    """An executor whose blocks a provider scales between ``min_blocks`` and ``max_blocks``.

    The kernel calls ``set_adaptive()`` before ``start()`` from ``Config(strategy=...)``:
    ``'none'`` (or None) fixes the blocks at ``init_blocks``, as in Parsl; any other strategy
    lets them scale."""

    adaptive: bool

    def set_adaptive(self, enabled: bool) -> None:
        """Whether blocks may scale with the load (called before ``start()``)."""
        self.adaptive = enabled


# Parsl's name for the executor interface (``parsl.executors.base.ParslExecutor``): a Parsl
# executor subclass written against it implements the same start/submit/shutdown.
ParslExecutor = Executor
