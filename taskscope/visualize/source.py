"""The dashboard's access to its database: a fresh read-only connection per request, reads
retried while a writer holds a lock, and results cached until the database file changes (a
finished run's pages then cost nothing after the first view; a live run's never go stale)."""

from __future__ import annotations

import os
import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from taskscope.store.readonly import open_readonly, retry_busy

T = TypeVar("T")
CACHE_ENTRIES = 256


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

    def read(self, action: Callable[[sqlite3.Connection], T]) -> T:
        def attempt() -> T:
            conn = open_readonly(self.path)
            try:
                return action(conn)
            finally:
                conn.close()

        return retry_busy(attempt)

    def cached(self, key: tuple[Any, ...], action: Callable[[sqlite3.Connection], T]) -> T:
        full_key = (key, self.signature())
        with self._lock:
            if full_key in self._cache:
                self._cache.move_to_end(full_key)
                return self._cache[full_key]  # type: ignore[return-value]
        value = self.read(action)
        with self._lock:
            self._cache[full_key] = value
            while len(self._cache) > CACHE_ENTRIES:
                self._cache.popitem(last=False)
        return value
