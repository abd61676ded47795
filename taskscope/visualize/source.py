"""The dashboard's access to its database: a fresh read-only connection per request, reads
retried while a writer holds a lock, and results cached until the database file changes (a
finished run's pages then cost nothing after the first view; a live run's never go stale)."""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from taskscope.store.readonly import open_readonly, retry_busy

T = TypeVar("T")
CACHE_ENTRIES = 256
READ_DEADLINE_S = 60.0
PROGRESS_STEPS = 100_000  # SQLite VM steps between deadline checks (well under 1 ms)


class DatabaseSource:
    def __init__(self, path: Path | str) -> None:
        self.path = Path(path).resolve()
        self._cache: OrderedDict[tuple[Any, ...], object] = OrderedDict()
        self._lock = threading.Lock()

    def signature(self) -> tuple[Any, ...]:
        """Changes whenever the writer commits (the file or its WAL changes)."""
        parts = []
        for suffix in ("", "-wal"):
            try:
                st = os.stat(str(self.path) + suffix)
                parts += [st.st_mtime_ns, st.st_size]
            except OSError:
                parts += [0, 0]
        return tuple(parts)

    def read(self, action: Callable[[sqlite3.Connection], T], deadline_s: float | None = None) -> T:
        """``action(conn)`` on a fresh read-only connection, stopped after ``deadline_s``
        (``READ_DEADLINE_S`` unless given: longer only for reads off the request threads)."""
        limit = READ_DEADLINE_S if deadline_s is None else deadline_s

        def attempt() -> T:
            conn = open_readonly(self.path)
            # A database is data from anywhere: a view named like a table can loop for ever.
            # Every read is stopped at a deadline far above any page's real cost, so that no
            # database can hold the server's request threads.
            deadline = time.monotonic() + limit
            conn.set_progress_handler(lambda: time.monotonic() > deadline, PROGRESS_STEPS)
            try:
                return action(conn)
            except sqlite3.OperationalError as exc:
                if time.monotonic() > deadline and "interrupted" in str(exc):
                    raise sqlite3.OperationalError(
                        f"a query ran past {limit:g} s and was stopped; the "
                        "database may be damaged or hostile (a view that never ends?)"
                    ) from exc
                raise
            finally:
                conn.close()

        return retry_busy(attempt)

    def peek(self, key: tuple[Any, ...]) -> tuple[bool, Any]:
        """(True, the value) when `key` is cached for the database as it is now, without
        reading anything; (False, None) otherwise."""
        full_key = (key, self.signature())
        with self._lock:
            if full_key in self._cache:
                self._cache.move_to_end(full_key)
                return True, self._cache[full_key]
        return False, None

    def cached(
        self,
        key: tuple[Any, ...],
        action: Callable[[sqlite3.Connection], T],
        deadline_s: float | None = None,
    ) -> T:
        full_key = (key, self.signature())
        with self._lock:
            if full_key in self._cache:
                self._cache.move_to_end(full_key)
                return self._cache[full_key]  # type: ignore[return-value]
        value = self.read(action, deadline_s)
        with self._lock:
            self._cache[full_key] = value
            while len(self._cache) > CACHE_ENTRIES:
                self._cache.popitem(last=False)
        return value
