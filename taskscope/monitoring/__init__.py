"""Monitoring capture: ``MonitoringHub`` and the worker-side wrapper and sampler."""

from taskscope.monitoring.errors import MonitoringError, MonitoringWarning
from taskscope.monitoring.monitoring import MonitoringHub

__all__ = ["MonitoringError", "MonitoringHub", "MonitoringWarning"]
