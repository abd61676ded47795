"""HighThroughputExecutor errors at Parsl's path, ``parsl.executors.high_throughput.errors``.

``WorkerLost`` is the error a task gets when the worker process running it dies. The others
exist so Parsl programs that name them in ``except`` clauses import: there is no separate
manager or interchange process here (workers are children of the workflow process), so
taskscope never raises ``ManagerLost``, ``VersionMismatch`` or the command-client errors.
"""

from __future__ import annotations

import time

from taskscope.errors import WorkerLost

__all__ = [
    "CommandClientBadError",
    "CommandClientTimeoutError",
    "ManagerLost",
    "VersionMismatch",
    "WorkerLost",
]


class ManagerLost(Exception):
    """Parsl: tasks lost with a manager that missed its heartbeats. Never raised here."""

    def __init__(self, manager_id: bytes, hostname: str) -> None:
        super().__init__(manager_id, hostname)
        self.manager_id = manager_id
        self.tstamp = time.time()
        self.hostname = hostname

    def __str__(self) -> str:
        manager = (
            self.manager_id.decode() if isinstance(self.manager_id, bytes) else self.manager_id
        )
        return f"Task failure due to loss of manager {manager} on host {self.hostname}"


class VersionMismatch(Exception):
    """Parsl: manager and interchange versions differ. Never raised here (one process tree,
    one installation)."""

    def __init__(self, interchange_version: str, manager_version: str):
        super().__init__(interchange_version, manager_version)
        self.interchange_version = interchange_version
        self.manager_version = manager_version

    def __str__(self) -> str:
        return (
            f"Manager version info {self.manager_version} does not match interchange"
            f" version info {self.interchange_version}"
        )


class CommandClientTimeoutError(Exception):
    """Parsl: the interchange's command channel timed out. Never raised here."""


class CommandClientBadError(Exception):
    """Parsl: the interchange's command channel is unusable. Never raised here."""
