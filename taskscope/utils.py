"""Parsl's ``parsl.utils`` helpers that taskscope provides: finding checkpoints."""

from taskscope.dataflow.checkpoint import get_all_checkpoints, get_last_checkpoint

__all__ = ["get_all_checkpoints", "get_last_checkpoint"]
