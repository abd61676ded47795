"""Parsl's ``parsl.dataflow.errors`` names, for ported ``except`` clauses."""

from taskscope.errors import (
    BadCheckpoint,
    DataFlowException,
    DependencyError,
    JoinError,
    PropagatedException,
)

__all__ = [
    "BadCheckpoint",
    "DataFlowException",
    "DependencyError",
    "JoinError",
    "PropagatedException",
]
