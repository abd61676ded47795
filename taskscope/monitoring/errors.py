"""How monitoring failures reach the user."""


class MonitoringError(Exception):
    """Monitoring cannot start, or failed while the workflow ran (the message says why)."""


class MonitoringWarning(UserWarning):
    """Monitoring stopped recording while the workflow goes on; the database is incomplete."""
