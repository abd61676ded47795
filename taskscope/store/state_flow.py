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
from typing import Any

from taskscope.store.app_edges import TaskApps
from taskscope.store.states import LIFECYCLE_ORDER
from taskscope.store.worker_rollup import BUCKET_SECONDS, MINUTE_SECONDS, UNKNOWN_APP, app_of

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


_STATE_INDEX = {state: i for i, state in enumerate(LIFECYCLE_ORDER)}
_STATES = len(LIFECYCLE_ORDER)
_TRIES_IN_BITS = 64 // _STATES  # tries whose transitions fit the per-task word


class SeenTransitions:
    """Which (state, try) transitions of one run's tasks have been counted."""

    __slots__ = ("_bits", "_others")

    def __init__(self) -> None:
        self._bits = array("Q")
        self._others: set[tuple[int, int, str]] = set()

    def _slot(self, task_id: int, try_id: int, state: str) -> tuple[int, int] | None:
        index = _STATE_INDEX.get(state)
        if index is None or not 0 <= try_id < _TRIES_IN_BITS or task_id < 0:
            return None
        if task_id >= len(self._bits) + (1 << 16):
            return None
        return task_id, 1 << (try_id * _STATES + index)

    def __contains__(self, key: tuple[int, int, str]) -> bool:
        slot = self._slot(*key)
        if slot is None:
            return key in self._others
        task_id, bit = slot
        return task_id < len(self._bits) and bool(self._bits[task_id] & bit)

    def add(self, key: tuple[int, int, str]) -> None:
        slot = self._slot(*key)
        if slot is None:
            self._others.add(key)
            return
        task_id, bit = slot
        if task_id >= len(self._bits):
            self._bits.extend([0] * (task_id + 1 - len(self._bits)))
        self._bits[task_id] |= bit


def _load_seen(conn: sqlite3.Connection, run_id: str) -> SeenTransitions:
    """The transitions already counted for a run this writer takes over (none for a new run)."""
    seen = SeenTransitions()
    for task_id, try_id, state in conn.execute(
        "SELECT task_id, try_id, task_status_name FROM status WHERE run_id = ?", (run_id,)
    ):
        seen.add((task_id, try_id, state))
    return seen


class StateFlowBatch:
    """One batch's transitions, counted per (run, second, app, state) once their apps are
    known; the record of counted transitions grows only in ``keep``, after the write."""

    __slots__ = (
        "apps",
        "conn",
        "counts",
        "minutes",
        "new_seen",
        "pending",
        "seen",
        "totals",
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
        self.pending: list[tuple[str, int, int, str, float]] = []
        self.waiting: list[tuple[str, int, int, str, float]] = []  # app not known yet
        self.new_seen: set[tuple[str, int, int, str]] = set()
        self.counts: dict[tuple[str, int, str, str], int] = {}
        self.minutes: dict[tuple[str, int, str, str], int] = {}
        self.totals: dict[tuple[str, str, str], int] = {}

    def collect(self, run_id: str, task_id: int, try_id: int, state: str, ts: float) -> None:
        self.pending.append((run_id, task_id, try_id, state, ts))

    def resolve(
        self, batch_apps: dict[tuple[str, int], str], waiting: list[Any], give_up: bool
    ) -> None:
        """Count the collected transitions and those `waiting` from earlier batches; those
        of a task whose app is still unknown wait (``self.waiting``) unless `give_up`."""
        for item in waiting + self.pending:
            run_id, task_id, try_id, state, ts = item
            key = (run_id, task_id, try_id, state)
            if key in self.new_seen:
                continue
            seen = self.seen.get(run_id)
            if seen is None:
                seen = self.seen[run_id] = _load_seen(self.conn, run_id)
            if (task_id, try_id, state) in seen:
                continue
            app = app_of(self.conn, self.apps, batch_apps, run_id, task_id)
            if app is None and not give_up:
                self.waiting.append(item)
                continue
            self.new_seen.add(key)
            app = app or UNKNOWN_APP
            name = flow_state(state, try_id)
            cell = (run_id, math.floor(ts / BUCKET_SECONDS), app, name)
            self.counts[cell] = self.counts.get(cell, 0) + 1
            minute = (run_id, math.floor(ts / MINUTE_SECONDS), app, name)
            self.minutes[minute] = self.minutes.get(minute, 0) + 1
            total = (run_id, app, name)
            self.totals[total] = self.totals.get(total, 0) + 1

    def write(self) -> None:
        if self.counts:
            execute = self.conn.executemany
            execute(UPSERT_STATE_FLOW, [(*cell, n) for cell, n in self.counts.items()])
            execute(UPSERT_STATE_FLOW_MINUTE, [(*cell, n) for cell, n in self.minutes.items()])
            execute(UPSERT_APP_TOTAL, [(*cell, n) for cell, n in self.totals.items()])

    def keep(self) -> None:
        for run_id, task_id, try_id, state in self.new_seen:
            self.seen[run_id].add((task_id, try_id, state))
