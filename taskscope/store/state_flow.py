"""The writer's count of tasks entering each state, per app and second (``taskscope_state_flow``).

From these counts a reader gets, at any run size, with one small read:

- how many tasks of each app ended in each final state (a task enters one final state);
- how many tasks are in each state at any moment: a task's lifecycle is a fixed path, so the
  tasks in a state are those that entered it minus those that entered the states after it
  (see `taskscope.store.timeline_query`).

A transition is counted once however often it is reported (a worker's start is sent again
with its end, a batch may be replayed): ``SeenTransitions`` remembers, per task, which
(state, try) pairs were counted, in eight bytes a task.
"""

from __future__ import annotations

import math
import sqlite3
from array import array
from collections.abc import Iterable
from typing import Any

from taskscope.store.app_edges import TaskApps
from taskscope.store.states import LIFECYCLE_ORDER
from taskscope.store.worker_rollup import UNKNOWN_APP, app_of

UPSERT_STATE_FLOW = """
INSERT INTO taskscope_state_flow (run_id, bucket, app, state, entered) VALUES (?, ?, ?, ?, ?)
ON CONFLICT (run_id, bucket, app, state) DO UPDATE SET
    entered = taskscope_state_flow.entered + excluded.entered"""
UPSERT_STATE_FLOW_MINUTE = UPSERT_STATE_FLOW.replace(
    "taskscope_state_flow", "taskscope_state_flow_minute"
)
UPSERT_APP_TOTAL = """
INSERT INTO taskscope_app_total (run_id, app, state, entered) VALUES (?, ?, ?, ?)
ON CONFLICT (run_id, app, state) DO UPDATE SET
    entered = taskscope_app_total.entered + excluded.entered"""
# A retry's pending and launched, counted apart so that 'pending' counts tasks and
# 'launched' first tries.
RETRY_NAMES = {"pending": "pending_retry", "launched": "relaunched"}


def flow_state(state: str, try_id: int) -> str:
    return RETRY_NAMES.get(state, state) if try_id > 0 else state


_STATES = len(LIFECYCLE_ORDER)
_TRIES_IN_BITS = 64 // _STATES  # tries whose transitions fit the per-task word
# The bit of each transition in its task's word: _STATE_BITS[state][try_id].
_STATE_BITS = {
    state: tuple(1 << (try_id * _STATES + index) for try_id in range(_TRIES_IN_BITS))
    for index, state in enumerate(LIFECYCLE_ORDER)
}


class SeenTransitions:
    """Which (state, try) transitions of one run's tasks have been counted: a word of bits
    per task (``_STATE_BITS``) for the first tries of the states of ``LIFECYCLE_ORDER``; the
    set for the rest, and for tasks too far beyond the word array to grow it that far."""

    __slots__ = ("_bits", "_others")

    def __init__(self) -> None:
        self._bits = array("Q")
        self._others: set[tuple[int, int, str]] = set()

    def has(self, task_id: int, try_id: int, state: str) -> bool:
        state_bits = _STATE_BITS.get(state)
        if (
            state_bits is not None
            and 0 <= try_id < _TRIES_IN_BITS
            and 0 <= task_id < len(self._bits)
            and self._bits[task_id] & state_bits[try_id]
        ):
            return True
        # Even one the words can hold: it was kept in the set while its task was too far
        # beyond the array, which may have grown to reach it since.
        return bool(self._others) and (task_id, try_id, state) in self._others

    def update(self, keys: Iterable[tuple[int, int, str]]) -> None:
        """Record the (task, try, state) transitions of `keys` as counted."""
        bits = self._bits
        size = len(bits)
        for key in keys:
            task_id, try_id, state = key
            state_bits = _STATE_BITS.get(state)
            if (
                state_bits is None
                or not 0 <= try_id < _TRIES_IN_BITS
                or not 0 <= task_id < size + (1 << 16)  # a huge id must not grow the array
            ):
                self._others.add(key)
                continue
            if task_id >= size:
                bits.frombytes(bytes(bits.itemsize * (task_id + 1 - size)))
                size = task_id + 1
            bits[task_id] |= state_bits[try_id]


def _load_seen(conn: sqlite3.Connection, run_id: str) -> SeenTransitions:
    """The transitions already counted for a run this writer takes over (none for a new run)."""
    seen = SeenTransitions()
    seen.update(
        conn.execute(
            "SELECT task_id, try_id, task_status_name FROM status WHERE run_id = ?", (run_id,)
        )
    )
    return seen


class StateFlowBatch:
    """One batch's transitions, counted per (run, second, app, state) once their apps are
    known; the record of counted transitions grows only in ``keep``, after the write."""

    __slots__ = (
        "apps",
        "conn",
        "counts",
        "new_seen",
        "pending",
        "seen",
        "waiting",
    )

    def __init__(
        self,
        conn: sqlite3.Connection,
        apps: dict[str, TaskApps],
        seen: dict[str, SeenTransitions],
    ) -> None:
        self.conn = conn
        self.apps = apps
        self.seen = seen
        # (run, task, try, state, time): every transition of the batch, as
        # ``WriteBatch.transition`` places it.
        self.pending: list[tuple[str, int, int, str, float]] = []
        self.waiting: list[tuple[str, int, int, str, float]] = []  # app not known yet
        self.new_seen: dict[str, set[tuple[int, int, str]]] = {}  # run -> (task, try, state)
        self.counts: dict[tuple[str, int, str, str], int] = {}  # per (run, second, app, state)

    def resolve(
        self, batch_apps: dict[tuple[str, int], str], waiting: list[Any], give_up: bool
    ) -> None:
        """Count the collected transitions and those `waiting` from earlier batches; those
        of a task whose app is still unknown wait (``self.waiting``) unless `give_up`."""
        counts, floor = self.counts, math.floor
        # The previous item's run and its records: a batch is nearly always of one run.
        run_now: str | None = None
        seen = SeenTransitions()
        run_apps: TaskApps | None = None
        new_seen: set[tuple[int, int, str]] = set()
        for item in waiting + self.pending if waiting else self.pending:
            run_id, task_id, try_id, state, ts = item
            if run_id != run_now:
                run_now, run_apps = run_id, self.apps.get(run_id)
                if run_id not in self.seen:
                    self.seen[run_id] = _load_seen(self.conn, run_id)
                seen, new_seen = self.seen[run_id], self.new_seen.setdefault(run_id, set())
            key = (task_id, try_id, state)
            if key in new_seen or seen.has(task_id, try_id, state):
                continue
            app = batch_apps.get((run_id, task_id))
            if app is None and run_apps is not None:
                app = run_apps.get(task_id)
            if app is None:
                app = app_of(self.conn, self.apps, batch_apps, run_id, task_id)
                if app is None and not give_up:
                    self.waiting.append(item)
                    continue
            new_seen.add(key)
            # A bucket is a second (BUCKET_SECONDS), floor(ts / 1.0) == floor(ts); only the
            # seconds are counted here, the minutes and the totals are their sums (``write``).
            cell = (run_id, floor(ts), app or UNKNOWN_APP, flow_state(state, try_id))
            counts[cell] = counts.get(cell, 0) + 1

    def write(self) -> None:
        if not self.counts:
            return
        minutes: dict[tuple[str, int, str, str], int] = {}
        totals: dict[tuple[str, str, str], int] = {}
        for (run_id, second, app, name), n in self.counts.items():
            # The minute of second ``s`` is ``s // 60``: exactly floor(ts / 60) for every
            # ts in it (a float quotient never rounds up across an integer, see the tests).
            minute = (run_id, second // 60, app, name)
            minutes[minute] = minutes.get(minute, 0) + n
            total = (run_id, app, name)
            totals[total] = totals.get(total, 0) + n
        execute = self.conn.executemany
        execute(UPSERT_STATE_FLOW, [(*cell, n) for cell, n in self.counts.items()])
        execute(UPSERT_STATE_FLOW_MINUTE, [(*cell, n) for cell, n in minutes.items()])
        execute(UPSERT_APP_TOTAL, [(*cell, n) for cell, n in totals.items()])

    def keep(self) -> None:
        for run_id, keys in self.new_seen.items():
            self.seen[run_id].update(keys)
