"""Deferred parts that answer within PART_WAIT_S however long their data takes to read.

A part's data comes from the dashboard's cache (`source.DatabaseSource.cached`). A read that
is not done within PART_WAIT_S goes on in a background thread, which puts its result in that
cache; meanwhile the part answers with the last result it had for the same key (a live run
that has moved on since) or, on a first view, says that it is being computed, and the
browser asks again after PART_RETRY_S (`retry_after`). On taskscope's runs every part reads
the writer's rollups and is done well within the wait; the reads that take seconds are the
fallbacks over a big Parsl run's status history (a pass over ten rows a task), which no
request then waits for. One read per key at a time: requests that find it running wait for
the same one.
"""

from __future__ import annotations

import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from taskscope.visualize.latest import BACKGROUND_DEADLINE_S
from taskscope.visualize.source import DatabaseSource

T = TypeVar("T")
# A part (this module's, or the analysis's) answers within PART_WAIT_S; one still being
# computed is asked for again every PART_RETRY_S.
PART_WAIT_S = 0.2
PART_RETRY_S = 2.0
LAST_ENTRIES = 64


@dataclass(frozen=True)
class PartAnswer(Generic[T]):
    value: T | None  # None: being computed, nothing to show yet
    fresh: bool  # read from the database as it is now (False: ask again)


@dataclass
class _Read:
    done: threading.Event = field(default_factory=threading.Event)
    value: Any = None
    error: BaseException | None = None


class SlowParts:
    def __init__(self, source: DatabaseSource) -> None:
        self.source = source
        self._running: dict[Hashable, _Read] = {}
        self._last: OrderedDict[Hashable, Any] = OrderedDict()
        # Errors of reads finished after their requests stopped waiting: raised to the next.
        self._errors: dict[Hashable, BaseException] = {}
        self._lock = threading.Lock()

    def get(
        self,
        key: tuple[Any, ...],
        action: Callable[[sqlite3.Connection], T],
        wait_s: float = PART_WAIT_S,
    ) -> PartAnswer[T]:
        found, value = self.source.peek(key)
        if found:
            return PartAnswer(value, True)
        with self._lock:
            error = self._errors.pop(key, None)
            if error is not None:
                raise error
            read = self._running.get(key)
            if read is None:
                read = self._running[key] = _Read()
                threading.Thread(
                    target=self._read,
                    args=(key, action, read),
                    name="taskscope-part",
                    daemon=True,
                ).start()
        if read.done.wait(wait_s):
            with self._lock:
                self._errors.pop(key, None)  # this request reports it
            if read.error is not None:
                raise read.error
            return PartAnswer(read.value, True)
        with self._lock:
            return PartAnswer(self._last.get(key), False)

    def _read(
        self, key: tuple[Any, ...], action: Callable[[sqlite3.Connection], Any], read: _Read
    ) -> None:
        try:
            read.value = self.source.cached(key, action, BACKGROUND_DEADLINE_S)
            with self._lock:
                self._last[key] = read.value
                self._last.move_to_end(key)
                while len(self._last) > LAST_ENTRIES:
                    self._last.popitem(last=False)
        except BaseException as exc:  # noqa: BLE001 - raised in the request that asks next
            read.error = exc
            with self._lock:
                self._errors[key] = exc
                while len(self._errors) > LAST_ENTRIES:
                    self._errors.pop(next(iter(self._errors)))
        finally:
            with self._lock:
                self._running.pop(key, None)
            read.done.set()
