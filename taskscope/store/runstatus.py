"""A run's status as a reader should report it, including runs that died without saying so."""

from __future__ import annotations

from taskscope.store.timestamps import age_seconds

# A taskscope run whose heartbeat is older than this many intervals is lost.
HEARTBEAT_INTERVALS_BEFORE_LOST = 3
# A Parsl run (no heartbeat) with no status row for this long and no end time is lost.
PARSL_QUIET_SECONDS_BEFORE_LOST = 300.0


def taskscope_run_status(
    recorded: str, last_heartbeat: str | None, heartbeat_interval: float | None, convention: str
) -> str:
    """taskscope_run.status, with 'running' turned into 'lost' once the heartbeat stopped."""
    if recorded != "running":
        return recorded
    age = age_seconds(last_heartbeat, convention)
    interval = heartbeat_interval if heartbeat_interval and heartbeat_interval > 0 else 1.0
    if age is None or age > HEARTBEAT_INTERVALS_BEFORE_LOST * interval:
        return "lost"
    return "running"


def parsl_run_status(
    time_completed: str | None, failed_tasks: int, last_activity: str | None, convention: str
) -> str:
    """Parsl records no run status: derive it from the end time, failures and recent activity."""
    if time_completed:
        return "failed" if failed_tasks > 0 else "completed"
    age = age_seconds(last_activity, convention)
    if age is not None and age <= PARSL_QUIET_SECONDS_BEFORE_LOST:
        return "running"
    return "lost"
