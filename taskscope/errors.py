"""Errors a taskscope user can meet, named like Parsl's so ported ``except`` clauses work.

Every error keeps its constructor arguments in ``self.args`` so it pickles: errors raised on
a worker travel back to the DataFlowKernel.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


class TaskscopeError(Exception):
    """Base of every taskscope error."""


class ConfigurationError(TaskscopeError):
    """A Config or executor was given arguments that cannot work."""


class NoDataFlowKernelError(TaskscopeError):
    """An app was called (or ``dfk()`` asked for) before ``taskscope.load(config)``."""


class ExecutorLabelError(ConfigurationError, ValueError):
    """An app asked for an executor label that the loaded config does not have."""

    def __init__(self, app_name: str, unknown: Sequence[str], known: Sequence[str]):
        super().__init__(app_name, list(unknown), list(known))
        self.app_name, self.unknown, self.known = app_name, list(unknown), list(known)

    def __str__(self) -> str:
        known = ", ".join(repr(k) for k in self.known) or "(none)"
        unknown = ", ".join(repr(u) for u in self.unknown)
        return f"app {self.app_name!r} asks for executor {unknown}; the loaded config has: {known}"


class AppException(TaskscopeError):
    """An app failed in a way taskscope detected (as opposed to an exception it raised)."""


class BashExitFailure(AppException):
    """A bash app's command exited with a non-zero status."""

    def __init__(self, app_name: str, exitcode: int):
        super().__init__(app_name, exitcode)
        self.app_name, self.exitcode = app_name, exitcode

    def __str__(self) -> str:
        return f"bash app {self.app_name!r} failed with exit code {self.exitcode}"


class AppTimeout(AppException):
    """An app ran longer than its ``walltime=``."""


class BashAppNoReturn(AppException):
    """A bash app's function returned None instead of a command line."""


class AppBadFormatting(AppException):
    """A bash app's command line could not be built from its arguments."""


class BadStdStreamFile(AppException):
    """A ``stdout=``/``stderr=`` target could not be opened."""


class MissingOutputs(AppException):
    """An app finished without creating the files it promised in ``outputs=``."""

    def __init__(self, reason: str, outputs: list[Any]):
        super().__init__(reason, outputs)
        self.reason, self.outputs = reason, outputs

    def __str__(self) -> str:
        return f"{self.reason}: {', '.join(str(o) for o in self.outputs)}"


class DataFlowException(TaskscopeError):
    """Base of the errors the DataFlowKernel raises about a task (``parsl.dataflow.errors``)."""


class BadCheckpoint(DataFlowException):
    """A checkpoint could not be loaded (kept for Parsl's name; taskscope does not checkpoint)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason

    def __str__(self) -> str:
        return self.reason


class PropagatedException(DataFlowException):
    """A task failed because tasks it depends on (or joined) failed.

    ``dependent_exceptions_tids`` holds ``(exception, description)`` pairs, the description
    being ``"task N"`` for an AppFuture of this run (or the future's repr), as in Parsl.
    ``__cause__`` is the first root exception that is not itself propagated, so a traceback
    shows the real failure; the message names the chain of tasks leading to it.
    """

    _failure_description = "Propagated failure"

    def __init__(
        self, dependent_exceptions_tids: Sequence[tuple[BaseException, str]], task_id: int
    ):
        super().__init__(list(dependent_exceptions_tids), task_id)
        self.dependent_exceptions_tids = list(dependent_exceptions_tids)
        self.task_id = task_id
        self._root = self._find_root_cause()
        self.__cause__ = self._root

    def _find_root_cause(self) -> BaseException | None:
        # The first dependency's own root, found when it failed: O(1) per task, so a long
        # dep_fail chain does not cost its length squared.
        if not self.dependent_exceptions_tids:
            return None
        first = self.dependent_exceptions_tids[0][0]
        if isinstance(first, PropagatedException):
            return first._root
        return first

    def _cause_sequence(self) -> list[str]:
        e: BaseException = self
        sequence: list[str] = []
        while isinstance(e, PropagatedException) and e.dependent_exceptions_tids:
            first_exc, description = e.dependent_exceptions_tids[0]
            if len(e.dependent_exceptions_tids) > 1:
                description = f"{description} (+ others)"
            sequence.append(str(description))
            e = first_exc
        return sequence

    def __str__(self) -> str:
        chain = " <- ".join(self._cause_sequence())
        root = self._root
        because = f": {type(root).__name__}: {root}" if root is not None else ""
        return (
            f"{self._failure_description} for task {self.task_id}. "
            f"The representative cause is via {chain}{because}"
        )


class DependencyError(PropagatedException):
    """A task did not run because tasks it depends on failed."""

    _failure_description = "Dependency failure"


class JoinError(PropagatedException):
    """Futures returned by a join app failed."""

    _failure_description = "Join failure"


class SerializationError(TaskscopeError):
    """A function, argument or result could not be serialised for another process."""


class ExecutorError(TaskscopeError):
    """An executor cannot run tasks (it is shut down, or its workers cannot start)."""

    def __init__(self, executor_label: Any, reason: str):
        # Parsl passes the executor itself: keep it, but only its label goes in ``args``
        # (an executor does not pickle).
        label = getattr(executor_label, "label", executor_label)
        super().__init__(label, reason)
        self.executor_label, self.reason = label, reason
        self.executor = executor_label

    def __reduce__(self) -> tuple:
        state = {k: v for k, v in self.__dict__.items() if k != "executor"}
        return (type(self), self.args, state)

    def __str__(self) -> str:
        return f"executor {self.executor_label!r}: {self.reason}"


class WorkerLost(TaskscopeError):
    """The worker process running a task died (os._exit, a signal, the OOM killer)."""

    def __init__(self, worker_id: str, hostname: str, reason: str = "the worker process died"):
        super().__init__(worker_id, hostname, reason)
        self.worker_id, self.hostname, self.reason = worker_id, hostname, reason

    def __str__(self) -> str:
        return (
            f"worker {self.worker_id} on {self.hostname} was lost while running this task: "
            f"{self.reason}"
        )


class RemoteExceptionWrapper(TaskscopeError):
    """Stands in for an exception raised on a worker that could not be pickled back."""

    def __init__(self, type_name: str, message: str):
        super().__init__(type_name, message)
        self.type_name, self.message = type_name, message

    def __str__(self) -> str:
        return f"{self.type_name}: {self.message}"


def remote_traceback(exc: BaseException) -> str | None:
    """The formatted traceback recorded where ``exc`` was raised (on a worker), if any."""
    return getattr(exc, "_taskscope_remote_traceback", None)
