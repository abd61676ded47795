"""The newest result of an expensive read, per key, refreshed in the background.

For the run analysis (`store/analysis`: seconds of CPU at 10^5 tasks, tens of seconds at
10^6). The dashboard's cache keeps a result until the database changes, and on a live run
it changes between any two refreshes: every refresh of the workflow page recomputed the
analysis, and several viewers computed it in several threads at once. Here a request gets
the newest finished result at once, marked stale when the database has changed since, while
one background thread computes a fresher one for the next request (in a process of its own
on a big database, visualize/apart.py). Only the first request
for a key waits, and concurrent first requests wait for the same computation. A refresh
starts at most every ``REFRESH_EVERY`` times the last computation's duration (and not
within ``REFRESH_MIN_S``), so a viewer of a live run costs the server at most a fifth of a
core however often the page refreshes.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from taskscope.visualize.apart import ApartFailed, read_apart, worth_a_process
from taskscope.visualize.source import DatabaseSource

logger = logging.getLogger(__name__)

T = TypeVar("T")
ENTRIES = 32
# The computations run off the request threads, so they may take longer than a request's
# read deadline (source.READ_DEADLINE_S): the analysis of a 10^6-task run takes about a
# minute on a loaded machine. Still bounded, for a hostile database's endless view.
BACKGROUND_DEADLINE_S = 900.0
REFRESH_EVERY = 5.0
REFRESH_MIN_S = 5.0


@dataclass(frozen=True)
class Latest(Generic[T]):
    value: T
    computed_at: float  # time.time() when its read began
    stale: bool  # the database has changed since (a fresher one is, or will be, computed)


@dataclass
class _Entry:
    value: Any
    signature: tuple[Any, ...]
    computed_at: float
    took_s: float

    def due(self, now: float) -> bool:
        return now >= self.computed_at + max(REFRESH_MIN_S, REFRESH_EVERY * self.took_s)


@dataclass
class _Job:
    done: threading.Event = field(default_factory=threading.Event)
    entry: _Entry | None = None
    error: BaseException | None = None


class LatestResults:
    def __init__(self, source: DatabaseSource, entries: int = ENTRIES) -> None:
        self.source = source
        self.entries = entries
        self._results: OrderedDict[Hashable, _Entry] = OrderedDict()
        self._running: dict[Hashable, _Job] = {}
        # key -> (signature, error) of a first computation that failed: raised again until
        # the database changes, rather than started again on every request. Bounded like
        # the results: every mistyped or hostile run id in a URL is a key.
        self._failed: OrderedDict[Hashable, tuple[tuple[Any, ...], BaseException]] = OrderedDict()
        self._lock = threading.Lock()

    def get(
        self, key: Hashable, action: Callable[[Any], T], wait_s: float | None = None
    ) -> Latest[T] | None:
        """The newest result of ``action(conn)`` for ``key``; the first call computes it (and
        raises what it raises), later calls never wait for a recomputation. With ``wait_s``,
        a first computation runs in the background and None comes back if it is not done
        within ``wait_s`` seconds (ask again later: it goes on)."""
        signature = self.source.signature()
        with self._lock:
            entry = self._results.get(key)
            if entry is not None:
                self._results.move_to_end(key)
                stale = entry.signature != signature
                if stale and key not in self._running and entry.due(time.time()):
                    self._start(key, action, signature, self._running.setdefault(key, _Job()))
                return Latest(entry.value, entry.computed_at, stale)
            failed = self._failed.get(key)
            if failed is not None and failed[0] == signature and key not in self._running:
                raise failed[1]
            running = self._running.get(key)
            owner = running is None
            job = self._running[key] = _Job() if running is None else running
            if owner and wait_s is not None:
                self._start(key, action, signature, job)
        if owner and wait_s is None:
            self._compute(key, action, signature, job, background=False)
        elif not job.done.wait(wait_s):
            return None
        if job.error is not None:
            raise job.error
        assert job.entry is not None  # set by _compute unless it raised
        return Latest(job.entry.value, job.entry.computed_at, False)

    def _start(
        self, key: Hashable, action: Callable[[Any], Any], signature: tuple[Any, ...], job: _Job
    ) -> None:
        threading.Thread(
            target=self._compute,
            args=(key, action, signature, job, True),
            name="taskscope-refresh",
            daemon=True,
        ).start()

    def _read(self, action: Callable[[Any], Any], background: bool) -> Any:
        if background and worth_a_process(self.source.path):  # (visualize/apart.py)
            try:
                return read_apart(self.source.path, action, BACKGROUND_DEADLINE_S)
            except ApartFailed as exc:  # the process is for speed: the thread still answers
                logger.warning("%s; reading in the server instead", exc)
        return self.source.read(action, BACKGROUND_DEADLINE_S if background else None)

    def _compute(
        self,
        key: Hashable,
        action: Callable[[Any], Any],
        signature: tuple[Any, ...],
        job: _Job,
        background: bool,
    ) -> None:
        began = time.time()
        try:
            value = self._read(action, background)
            job.entry = _Entry(value, signature, began, time.time() - began)
            with self._lock:
                self._failed.pop(key, None)
                self._results[key] = job.entry
                while len(self._results) > self.entries:
                    self._results.popitem(last=False)
        except BaseException as exc:  # noqa: BLE001 - re-raised in each waiting request (a 404)
            job.error = exc
            with self._lock:
                self._failed[key] = (signature, exc)
                while len(self._failed) > self.entries:
                    self._failed.popitem(last=False)
            if background:
                logger.warning("computing %r failed: %s", key, exc)
        finally:
            with self._lock:
                self._running.pop(key, None)
            job.done.set()
