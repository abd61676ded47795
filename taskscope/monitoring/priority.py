"""The writer process's CPU priority: low while it keeps up, normal when it falls behind.

At a low priority the writer uses the CPU the workflow leaves idle and lags behind a burst
instead of slowing it. But on a machine busy with other work a niced process may get only
~1.5% of a core, and readers must see each change within a second. So the writer watches how
old the messages it writes are (their own timestamps, against its clock) and switches its
priority between two levels.

The level that counts is the scheduler autogroup's: the writer runs in a session of its own
(Ctrl-C must not kill it before the run's end is written), and with autogroups on (the
default in most Linux distributions) every session gets an equal share of the CPU whatever
its processes' nice values, so ``os.nice`` alone left the writer as much CPU as the workflow
(0.6 of a core in a 2,000-task burst on 2 cores). Unlike a process's nice value, an
autogroup's may be lowered again without privileges (only negative values need them).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

logger = logging.getLogger(__name__)

LOW = 19  # nice value while the writer keeps up
BEHIND_S = 0.4  # messages older than this when written: raise the priority
CAUGHT_UP_S = 0.15  # ...and lower it again once they are this fresh
AUTOGROUP = "/proc/self/autogroup"


def _set_autogroup_nice(value: int) -> bool:
    try:
        with open(AUTOGROUP, "w") as f:
            f.write(str(value))
        return True
    except OSError:
        return False  # no autogroups (not Linux, or disabled)


class WriterPriority:
    """Keeps the writer at ``LOW`` unless the messages it writes are ``BEHIND_S`` old."""

    def __init__(self, set_group_nice: Callable[[int], bool] = _set_autogroup_nice) -> None:
        self._set_group_nice = set_group_nice
        self.low = True

    def start(self) -> None:
        try:
            os.nice(LOW)  # the process itself: what counts where there are no autogroups
        except OSError:
            pass
        self._set_group_nice(LOW)

    def observe(self, lag: float) -> None:
        """``lag``: seconds between a just-written message's timestamp and now."""
        if self.low and lag > BEHIND_S:
            if self._set_group_nice(0):
                self.low = False
                logger.debug("writer %.2f s behind: normal priority", lag)
        elif not self.low and lag < CAUGHT_UP_S:
            self._set_group_nice(LOW)
            self.low = True
            logger.debug("writer caught up: low priority")


def message_time(message: object) -> float | None:
    """When the event a message reports happened, if it says (never a task's invocation time:
    a task's last row carries it however long ago the task began)."""
    for name in ("timestamp", "time_returned", "time_ended", "time_running"):
        value = getattr(message, name, None)
        if value is not None:
            return value
    return None
