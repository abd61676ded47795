"""Parsl's ``parsl.serialize`` package path (errors only: taskscope's wire format is its own)."""
