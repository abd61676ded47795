"""Parsl's ``parsl.serialize.errors`` names."""

from __future__ import annotations

from taskscope.errors import SerializationError, TaskscopeError

__all__ = ["DeserializationError", "SerializationError"]


class DeserializationError(TaskscopeError):
    """A result or exception sent back by a worker could not be deserialised."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason

    def __str__(self) -> str:
        return f"Failed to deserialize objects. Reason: {self.reason}"
