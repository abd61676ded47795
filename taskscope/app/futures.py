"""Parsl's ``parsl.app.futures`` name for DataFuture."""

from taskscope.dataflow.futures import DataFuture  # noqa: F401
