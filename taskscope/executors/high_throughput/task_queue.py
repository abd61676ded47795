"""The executor's queue of calls waiting for a worker, with Parsl's task priorities.

A task submitted with ``parsl_resource_specification={'priority': p}`` waits in a heap and
goes before every task without one; lower ``p`` first, and submission order among equals
(Parsl's interchange: priority ``inf`` when none is given). Tasks without a priority wait in
a plain deque, so the common case costs what it did.

``submit()`` appends from any thread while the I/O thread pops: deque operations are atomic,
and the heap has its own lock.
"""

from __future__ import annotations

import heapq
import threading
from collections import deque
from collections.abc import Iterable
from typing import Any, Protocol


class _Prioritised(Protocol):
    tid: int
    priority: float | None


class TaskQueue:
    __slots__ = ("_fifo", "_heap", "_lock")

    def __init__(self) -> None:
        self._fifo: deque[Any] = deque()
        self._heap: list[tuple[float, int, Any]] = []
        self._lock = threading.Lock()

    def append(self, task: _Prioritised) -> None:
        if task.priority is None:
            self._fifo.append(task)
        else:
            with self._lock:
                heapq.heappush(self._heap, (task.priority, task.tid, task))

    def extendleft(self, tasks: Iterable[_Prioritised]) -> None:
        """Put tasks back at the head (``deque.extendleft`` order: pass them reversed)."""
        for task in tasks:
            if task.priority is None:
                self._fifo.appendleft(task)
            else:
                self.append(task)  # its priority and id put it back in its turn

    def popleft(self) -> Any:
        if self._heap:
            with self._lock:
                if self._heap:
                    return heapq.heappop(self._heap)[2]
        return self._fifo.popleft()

    def __len__(self) -> int:
        return len(self._fifo) + len(self._heap)

    def __bool__(self) -> bool:
        return bool(self._fifo) or bool(self._heap)
