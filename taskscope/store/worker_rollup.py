"""The writer's record of tries as their workers saw them, and the rollups built from it.

A worker reports each try's start and end on its own clock (``TryRun``). The writer keeps:

- ``taskscope_try_run``: one row per try: the worker that ran it, its app, start and end
  (epoch seconds); the task stream's exact bars for a time window come from here.
- ``taskscope_occupancy``: seconds each worker spent on each app in each one-second bucket,
  and the tries that ended there. Workers busy over the whole run, per-app mean run time and
  the task stream of a run of any size are sums over these rows, a few per worker-second,
  instead of a pass over every try.
- ``taskscope_occupancy_minute`` and ``taskscope_occupancy_10min``: the same per minute
  and per ten minutes, for long runs.
- ``taskscope_run_extra.longest_try_s``: how far before a window a try that overlaps it can
  have started.

A try's end is counted once however often it is reported (the worker may send a try twice,
a batch may be replayed): ``EndedTries`` remembers which tries have been counted. A writer
that takes over a run written before (a resumed run) loads that record from the database.
"""

from __future__ import annotations

import math
import sqlite3
from array import array
from typing import Any

from taskscope.store.app_edges import TaskApps
from taskscope.store.messages import TryInfo, TryRun

BUCKET_SECONDS = 1.0
MINUTE_SECONDS = 60.0  # the coarse level, taskscope_occupancy_minute
TEN_MINUTE_SECONDS = 600.0  # the coarsest, taskscope_occupancy_10min
# The coarse levels' buckets in seconds (BUCKET_SECONDS is one second).
_MINUTE, _TEN_MIN = int(MINUTE_SECONDS), int(TEN_MINUTE_SECONDS)
UNKNOWN_APP = "(unknown app)"
UNKNOWN_WORKER = "(unknown worker)"
INTERNAL_EXECUTOR_LABELS = frozenset({"_taskscope_internal", "_parsl_internal"})

UPSERT_TRY_RUN = """
INSERT INTO taskscope_try_run (run_id, task_id, try_id, worker, app, time_running, time_ended)
VALUES (?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (run_id, task_id, try_id) DO UPDATE SET
    worker = COALESCE(excluded.worker, taskscope_try_run.worker),
    app = COALESCE(taskscope_try_run.app, excluded.app),
    time_ended = COALESCE(taskscope_try_run.time_ended, excluded.time_ended)"""

UPSERT_OCCUPANCY = """
INSERT INTO taskscope_occupancy (run_id, bucket, worker, app, busy_s, tries_ended)
VALUES (?, ?, ?, ?, ?, ?)
ON CONFLICT (run_id, bucket, worker, app) DO UPDATE SET
    busy_s = taskscope_occupancy.busy_s + excluded.busy_s,
    tries_ended = taskscope_occupancy.tries_ended + excluded.tries_ended"""

UPSERT_OCCUPANCY_MINUTE = UPSERT_OCCUPANCY.replace(
    "taskscope_occupancy", "taskscope_occupancy_minute"
)

UPSERT_OCCUPANCY_10MIN = UPSERT_OCCUPANCY.replace(
    "taskscope_occupancy", "taskscope_occupancy_10min"
)

UPSERT_APP_RUN_TOTAL = """
INSERT INTO taskscope_app_run_total (run_id, app, busy_s, tries_ended) VALUES (?, ?, ?, ?)
ON CONFLICT (run_id, app) DO UPDATE SET
    busy_s = taskscope_app_run_total.busy_s + excluded.busy_s,
    tries_ended = taskscope_app_run_total.tries_ended + excluded.tries_ended"""

UPSERT_LONGEST = """
INSERT INTO taskscope_run_extra (run_id, longest_try_s) VALUES (?, ?)
ON CONFLICT (run_id) DO UPDATE SET
    longest_try_s = MAX(taskscope_run_extra.longest_try_s, excluded.longest_try_s)"""

UPSERT_LAUNCH_DIR = """
INSERT INTO taskscope_run_extra (run_id, launch_dir) VALUES (?, ?)
ON CONFLICT (run_id) DO UPDATE SET launch_dir = excluded.launch_dir"""

# Try ids below this are remembered in a byte per task (one bit each); later retries in a set.
_BITS = 8


class EndedTries:
    """Which tries of one run have had their end counted, at about a byte per task."""

    __slots__ = ("_bits", "_others")

    def __init__(self) -> None:
        self._bits = array("B")
        self._others: set[tuple[int, int]] = set()

    def __contains__(self, key: tuple[int, int]) -> bool:
        task_id, try_id = key
        if (
            0 <= try_id < _BITS
            and 0 <= task_id < len(self._bits)
            and self._bits[task_id] >> try_id & 1
        ):
            return True
        # Even one the bytes can hold: it was kept in the set while its task was too far
        # beyond the array, which may have grown to reach it since.
        return bool(self._others) and key in self._others

    def add(self, key: tuple[int, int]) -> None:
        task_id, try_id = key
        if 0 <= try_id < _BITS and 0 <= task_id < len(self._bits) + (1 << 16):
            if task_id >= len(self._bits):
                self._bits.extend(bytes(task_id + 1 - len(self._bits)))
            self._bits[task_id] |= 1 << try_id
        else:
            self._others.add(key)


def spread(start: float, end: float, width: float = BUCKET_SECONDS) -> list[tuple[int, float]]:
    """(bucket, seconds) of the interval start..end over buckets `width` seconds wide."""
    if end <= start:
        return [(math.floor(start / width), 0.0)]
    first, last = math.floor(start / width), math.floor(end / width)
    if first == last:
        return [(first, end - start)]
    parts = [(first, (first + 1) * width - start)]
    parts.extend((b, width) for b in range(first + 1, last))
    parts.append((last, end - last * width))
    return parts


def add_occupancy(
    cells: dict[tuple[str, int, str, str], list[float]],
    run_id: str,
    worker: str,
    app: str,
    start: float,
    end: float,
    width: float,
) -> None:
    """Add one ended try to `cells` ((run, bucket, worker, app) -> [busy s, tries ended])."""
    parts = spread(start, end, width)
    last = len(parts) - 1
    for index, (bucket, seconds) in enumerate(parts):
        _add_to_cell(cells, (run_id, bucket, worker, app), seconds, int(index == last))


def _add_to_cell(
    cells: dict[tuple[str, int, str, str], list[float]],
    key: tuple[str, int, str, str],
    seconds: float,
    ended: int,
) -> None:
    cell = cells.get(key)
    if cell is None:
        cells[key] = [seconds, ended]  # what 0.0 + seconds and 0 + ended make
    else:
        cell[0] += seconds
        cell[1] += ended


def app_of(
    conn: sqlite3.Connection,
    apps: dict[str, TaskApps],
    batch_apps: dict[tuple[str, int], str],
    run_id: str,
    task_id: int,
) -> str | None:
    """A task's app: from this batch, the writer's map or the task table; None while the
    task's row has not reached this writer (a worker's report can overtake the kernel's)."""
    app = batch_apps.get((run_id, task_id))
    if app is None:
        known = apps.get(run_id)
        app = known.get(task_id) if known is not None else None
    if app is None:
        row = conn.execute(
            "SELECT task_func_name FROM task WHERE task_id = ? AND run_id = ?", (task_id, run_id)
        ).fetchone()
        app = row[0] if row else None
    return app


class WorkerRollupBatch:
    """One batch's contribution: try rows, occupancy increments and longest tries. The record
    of counted ends (``ended``, per run) is only extended by ``keep``, once the batch is
    written, so a batch that is rolled back and replayed counts its ends again."""

    __slots__ = (
        "app_totals",
        "apps",
        "conn",
        "ended",
        "internal",
        "longest",
        "minutes",
        "new_ended",
        "occupancy",
        "pending",
        "ten_minutes",
        "try_rows",
        "waiting",
    )

    def __init__(
        self,
        conn: sqlite3.Connection,
        apps: dict[str, TaskApps],
        ended: dict[str, EndedTries],
        internal: dict[str, set[int]],
    ) -> None:
        self.conn = conn
        self.apps = apps
        self.ended = ended
        self.internal = internal
        self.pending: list[TryRun] = []
        self.waiting: list[TryRun] = []  # tries whose task's app is not known yet
        self.try_rows: dict[tuple[str, int, int], list[Any]] = {}
        self.occupancy: dict[tuple[str, int, str, str], list[float]] = {}
        self.minutes: dict[tuple[str, int, str, str], list[float]] = {}
        self.ten_minutes: dict[tuple[str, int, str, str], list[float]] = {}
        self.app_totals: dict[tuple[str, str], list[float]] = {}
        self.longest: dict[str, float] = {}
        self.new_ended: set[tuple[str, int, int]] = set()

    def _ended_before(self, run_id: str, task_id: int, try_id: int) -> bool:
        if (run_id, task_id, try_id) in self.new_ended:
            return True
        record = self.ended.get(run_id)
        if record is None:
            record = self.ended[run_id] = _load_ended(self.conn, run_id)
        return (task_id, try_id) in record

    def collect(self, m: TryRun) -> None:
        self.pending.append(m)

    def note_launch(self, m: TryInfo) -> None:
        """Join apps run on the kernel's internal pool and wait there for their inner tasks:
        their tries are no worker's work, so they stay out of the occupancy."""
        if m.executor in INTERNAL_EXECUTOR_LABELS:
            self.internal.setdefault(m.run_id, set()).add(m.task_id)

    def resolve(
        self, batch_apps: dict[tuple[str, int], str], waiting: list[TryRun], give_up: bool
    ) -> None:
        """Roll up the collected tries and those `waiting` from earlier batches, once the
        batch's task rows (and apps) are known; tries of a task still unknown wait for a later
        batch (``self.waiting``), unless `give_up` (then their app is unknown for good)."""
        for m in waiting + self.pending:
            app = app_of(self.conn, self.apps, batch_apps, m.run_id, m.task_id)
            if app is None and not give_up:
                self.waiting.append(m)
                continue
            self._add(m, app or UNKNOWN_APP)

    def _add(self, m: TryRun, app: str) -> None:
        key = (m.run_id, m.task_id, m.try_id)
        worker = m.worker or (f"{m.hostname}" if m.hostname else UNKNOWN_WORKER)
        row = self.try_rows.get(key)
        if row is None:
            self.try_rows[key] = [*key, worker, app, m.time_running, m.time_ended]
        elif m.time_ended is not None and row[6] is None:
            row[6] = m.time_ended
        if m.time_ended is None or self._ended_before(*key):
            return
        if m.task_id in self.internal.get(m.run_id, ()):
            return
        self.new_ended.add(key)
        duration = max(0.0, m.time_ended - m.time_running)
        if duration > self.longest.get(m.run_id, 0.0):
            self.longest[m.run_id] = duration
        total = self.app_totals.setdefault((m.run_id, app), [0.0, 0])
        total[0] += duration
        total[1] += 1
        start, end = m.time_running, m.time_ended
        second = math.floor(start)
        if end > start and math.floor(end) == second:
            # Most tries: within one second, so within one minute and one ten minutes (for
            # every t in second s, floor(t / 60.0) == s // 60, see the tests), each level's
            # one cell gets the whole try, as spread would give it.
            run_id, seconds = m.run_id, end - start
            _add_to_cell(self.occupancy, (run_id, second, worker, app), seconds, 1)
            _add_to_cell(self.minutes, (run_id, second // _MINUTE, worker, app), seconds, 1)
            _add_to_cell(self.ten_minutes, (run_id, second // _TEN_MIN, worker, app), seconds, 1)
            return
        for cells, width in (
            (self.occupancy, BUCKET_SECONDS),
            (self.minutes, MINUTE_SECONDS),
            (self.ten_minutes, TEN_MINUTE_SECONDS),
        ):
            add_occupancy(cells, m.run_id, worker, app, start, end, width)

    def write(self) -> None:
        execute = self.conn.executemany
        if self.try_rows:
            execute(UPSERT_TRY_RUN, self.try_rows.values())
        if self.occupancy:
            execute(UPSERT_OCCUPANCY, [(*k, v[0], v[1]) for k, v in self.occupancy.items()])
            execute(UPSERT_OCCUPANCY_MINUTE, [(*k, v[0], v[1]) for k, v in self.minutes.items()])
            execute(UPSERT_OCCUPANCY_10MIN, [(*k, v[0], v[1]) for k, v in self.ten_minutes.items()])
            execute(UPSERT_APP_RUN_TOTAL, [(*k, v[0], v[1]) for k, v in self.app_totals.items()])
        if self.longest:
            execute(UPSERT_LONGEST, self.longest.items())

    def keep(self) -> None:
        for run_id, task_id, try_id in self.new_ended:
            self.ended[run_id].add((task_id, try_id))


def _load_ended(conn: sqlite3.Connection, run_id: str) -> EndedTries:
    """The ends already counted for a run this writer has not seen yet (none for a new run)."""
    record = EndedTries()
    for task_id, try_id in conn.execute(
        "SELECT task_id, try_id FROM taskscope_try_run WHERE run_id = ? AND time_ended IS NOT NULL",
        (run_id,),
    ):
        record.add((task_id, try_id))
    return record
