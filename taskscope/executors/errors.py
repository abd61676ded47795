"""Executor errors at Parsl's path, ``parsl.executors.errors``.

``ExecutorError`` is taskscope's own (``taskscope.errors.ExecutorError``), so one ``except``
clause catches both spellings; it takes an executor or its label as its first argument.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from taskscope.errors import ExecutorError, TaskscopeError

__all__ = [
    "BadMessage",
    "BadStateException",
    "ExecutorError",
    "InvalidResourceSpecification",
    "ScalingFailed",
    "UnsupportedFeatureError",
]


class BadStateException(ExecutorError):
    """A task's future fails with this when its executor is in a bad state (for example
    its workers cannot start); later submits raise it too."""

    def __init__(self, executor: Any, exception: BaseException | str):
        super().__init__(executor, str(exception))
        self.exception = exception


class UnsupportedFeatureError(ExecutorError):
    """A feature this executor does not have (Parsl's text, naming where it is)."""

    def __init__(self, feature: str, current_executor: str, target_executor: str | None):
        TaskscopeError.__init__(self, feature, current_executor, target_executor)
        self.executor_label = current_executor
        self.reason = f"{feature} is unsupported"
        self.feature = feature
        self.current_executor = current_executor
        self.target_executor = target_executor

    def __str__(self) -> str:
        if self.target_executor:
            return (
                f"The {self.feature} feature is unsupported in {self.current_executor}. "
                f"Please checkout {self.target_executor} for this feature"
            )
        return f"The {self.feature} feature is unsupported in {self.current_executor}."


class InvalidResourceSpecification(ExecutorError):
    """A ``parsl_resource_specification`` with keys this executor does not accept."""

    def __init__(self, invalid_keys: Iterable[str], message: str = ""):
        keys = set(invalid_keys)
        TaskscopeError.__init__(self, keys, message)
        self.executor_label = ""
        self.reason = message
        self.invalid_keys = keys
        self.message = message

    def __str__(self) -> str:
        return f"Invalid Resource Specification Supplied: {self.invalid_keys}. {self.message}"


class ScalingFailed(ExecutorError):
    """A provider could not start (or stop) a block."""

    def __str__(self) -> str:
        return f"Executor {self.executor_label} failed to scale due to: {self.reason}"


class BadMessage(TaskscopeError):
    """A message between executor components that could not be understood."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason

    def __str__(self) -> str:
        return f"Received an unsupported message. Reason:{self.reason}"
