"""The executor interface the DataFlowKernel uses (the shape of Parsl's ``ParslExecutor``)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any


class Executor(ABC):
    """Runs ready tasks somewhere and reports each through a ``concurrent.futures.Future``.

    The DataFlowKernel sets ``run_dir`` and, when monitoring is on, ``monitoring_send`` and
    ``run_id`` before calling ``start()``; executors use them for logs and for node/block
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
        """Tasks submitted and not yet finished (for status displays)."""
        return 0

    def __repr__(self) -> str:
        return f"{type(self).__name__}(label={self.label!r})"
