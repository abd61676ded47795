"""Says on stderr when the filesystem under the database stops answering, and when it answers
again.

A frozen filesystem (``fsfreeze``, a snapshot being taken), a hung NFS server or a dying disk
gives no error: a write to it simply does not return, and the thread that made it waits in
the kernel. The workflow process's forwarder is such a thread (it appends this process's
messages to the spool beside the database every 50 ms), and so is the writer process. Nothing
is lost meanwhile — ``MonitoringHub.send`` only appends to memory, and the writer process's
ZeroMQ socket queues what workers send — and once the write returns the writer catches up.
But without this watch the user sees nothing at all, for as long as the freeze lasts, even
while ``close()`` waits for it.

``SpoolStallWatch`` is a thread of its own in the workflow process: it looks at the spool
writer's ``busy_since`` (``store/spool.py``) twice a second and says, once per stall, that
recording is delayed and why, then that it goes on.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from taskscope.store.spool import SpoolWriter

logger = logging.getLogger("taskscope.monitoring")

# An append blocked this long is reported. A healthy append takes ~50 µs and a busy disk a
# few hundred ms; a lock held by another connection is reported by the writer after 0.5 s.
STALL_S = 5.0
CHECK_EVERY_S = 0.5


class SpoolStallWatch:
    """Watches one spool writer's appends; ``say`` gets one line of text per change."""

    def __init__(
        self, spool: SpoolWriter, say: Callable[[str], None], db_path: str, stall_s: float = STALL_S
    ) -> None:
        self.spool = spool
        self.say = say
        self.db_path = db_path
        self.stall_s = stall_s
        self.stalls = 0  # stalls reported so far
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._watch, name="taskscope-monitoring-stall-watch", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _tell(self, text: str) -> None:
        logger.warning("%s", text)  # into monitoring.log, for whoever reads it later
        self.say(text)

    def _watch(self) -> None:
        reported: float | None = None  # busy_since of the append reported as stalled
        while not self._stop.wait(CHECK_EVERY_S):
            reported = self._answered_again(reported)
            since = self.spool.busy_since
            if since is not None and reported is None and time.monotonic() - since >= self.stall_s:
                reported = since
                self.stalls += 1
                self._tell(
                    f"recording is delayed: the filesystem holding {self.db_path} does not "
                    f"answer (a write to {self.spool.directory} has not returned for "
                    f"{time.monotonic() - since:.0f} s: frozen, hung or failing?). Events wait "
                    "in memory until it answers; nothing is lost"
                )
        # Stopped (the run closes) right after a thaw: say so too, or the last word would
        # be that recording is delayed.
        self._answered_again(reported)

    def _answered_again(self, reported: float | None) -> float | None:
        """Says that the stalled append `reported` has returned, if it has; what is still
        reported after that (None once it has returned)."""
        if reported is not None and self.spool.busy_since != reported:
            self._tell(
                f"recording goes on: the filesystem holding {self.db_path} answers again "
                f"after {time.monotonic() - reported:.0f} s; the writer catches up"
            )
            return None
        return reported
