"""A buffer of messages waiting to be sent, shared by the threads of one process.

``add`` is one ``list.append`` (atomic under the GIL, no lock): it is on the hot path of every
task. ``take`` removes the messages present at that moment with a slice and a ``del`` of that
slice, never by swapping the list, so an ``add`` racing with it cannot land in a list that was
already taken (and be lost).

A message added with ``add_replaceable`` can be replaced until it is taken: the worker-side
wrapper adds a try's start this way and, when the try ends before the start was sent, replaces
it by the complete try, so a short try costs one message instead of two.
"""

from __future__ import annotations

import threading

from taskscope.store.messages import Message


class MessageBuffer:
    __slots__ = ("_items", "_lock", "_taken")

    def __init__(self) -> None:
        self._items: list[Message] = []
        self._lock = threading.Lock()
        self._taken = 0  # messages taken so far: turns a ticket into a list index

    def __len__(self) -> int:
        return len(self._items)

    def add(self, message: Message) -> None:
        self._items.append(message)

    def add_replaceable(self, message: Message) -> int:
        """Add ``message``; returns a ticket for ``replace``."""
        with self._lock:
            self._items.append(message)
            return self._taken + len(self._items) - 1

    def replace(self, ticket: int, message: Message) -> bool:
        """Put ``message`` in the place of the ticket's one if that was not taken yet."""
        with self._lock:
            index = ticket - self._taken
            if index < 0:
                return False
            self._items[index] = message
            return True

    def take(self) -> list[Message]:
        """Remove and return every message added so far, oldest first."""
        with self._lock:
            items = self._items
            n = len(items)
            if not n:
                return []
            batch = items[:n]
            del items[:n]
            self._taken += n
            return batch
