"""Monitoring capture: ``MonitoringHub`` and the worker-side wrapper and sampler."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from taskscope.monitoring.errors import MonitoringError, MonitoringWarning

if TYPE_CHECKING:
    from taskscope.monitoring.monitoring import MonitoringHub


def __getattr__(name: str) -> Any:
    # Loaded on first use: the writer child process imports ``taskscope.monitoring.hubprocess``
    # and must not pay for (or depend on) the hub's workflow-side imports (psutil, the wrapper,
    # the sampler).
    if name == "MonitoringHub":
        value = importlib.import_module("taskscope.monitoring.monitoring").MonitoringHub
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["MonitoringError", "MonitoringHub", "MonitoringWarning"]
