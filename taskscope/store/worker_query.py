"""Figures on the worker's clock: workers busy, run time per app, which worker ran a try.

A try's *run time* is from its ``running`` to its ``running_ended``, both taken by the worker
that ran it. The kernel's ``launched`` and ``returned`` times add the queue before the worker
picked the try up and the trip of the result back: those are reported separately, as the
kernel's view (`in_flight_series`), never as run time.

Sources, fastest first:

- taskscope's rollup (``taskscope_occupancy``, kept by the writer, see
  `taskscope.store.worker_rollup`): a few rows per worker-second, whatever the run's size;
- taskscope's per-try table ``taskscope_try_run`` (exact intervals, small runs);
- the ``running`` / ``running_ended`` rows of the status history, which Parsl's monitoring
  writes too (databases written by Parsl, or by a taskscope that predates the tables).
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass

from taskscope.store.readonly import describe_database
from taskscope.store.records import DatabaseInfo
from taskscope.store.worker_rollup import BUCKET_SECONDS, MINUTE_SECONDS

# Seconds of a text timestamp after :origin (whole epoch seconds), exact to the microsecond
# (whole seconds from the text without its fraction: strftime('%s') rounds .5 and above up):
# julianday() holds days in a double and resolves only ~40 µs, which is more than a no-op
# task lasts, so back-to-back tries of one worker would seem to overlap.
SINCE_ORIGIN_SQL = (
    "((CAST(strftime('%s', substr({col}, 1, 19)) AS INTEGER) - :origin) "
    "+ COALESCE(CAST(NULLIF(substr({col}, 20), '') AS REAL), 0.0))"
)
INTERNAL_EXECUTORS = "('_taskscope_internal', '_parsl_internal')"
# Below this many tries a run's busy series is computed from exact intervals.
EXACT_TRIES = 50_000
MINUTE_LEVEL_ABOVE_S = 1800.0  # runs longer than this read the per-minute occupancy


def rollup_resolution_s(span_s: float) -> float:
    """The finest time the writer's rollups resolve over a window of `span_s` seconds: its
    per-second rows, or on a long window the per-minute ones that are read instead."""
    return MINUTE_SECONDS if span_s > MINUTE_LEVEL_ABOVE_S else BUCKET_SECONDS


# A try occupies its worker from its running to its running_ended, both on the worker's
# clock; join apps run in the kernel, not on a worker. `busy_series` and `busy_now` read the
# tries through these two clauses (taskscope's per-try table, or the status history), so they
# cannot disagree on what busy means.
_TRY_RUN_ON_WORKERS = (
    "FROM taskscope_try_run r WHERE r.run_id = :run AND NOT EXISTS (SELECT 1 FROM try y "
    "WHERE y.run_id = r.run_id AND y.task_id = r.task_id AND y.try_id = r.try_id AND "
    f"y.task_executor IN {INTERNAL_EXECUTORS})"
)


@dataclass(frozen=True)
class WorkerTry:
    """A try as its worker saw it (times as epoch seconds for taskscope's tables)."""

    task_id: int
    try_id: int
    worker: str | None
    app: str | None
    time_running: float
    time_ended: float | None


def has_rollup(conn: sqlite3.Connection, info: DatabaseInfo, run_id: str) -> bool:
    """Whether the writer kept worker times for this run (taskscope's runs since the tables)."""
    if not info.has("taskscope_try_run"):
        return False
    return (
        conn.execute(
            "SELECT 1 FROM taskscope_try_run WHERE run_id = ? LIMIT 1", (run_id,)
        ).fetchone()
        is not None
    )


def _rebin(
    cells: list[tuple[float, float, float]], start: float, width: float, buckets: int
) -> list[float]:
    """Average number busy per display bucket from (cell start, cell end, busy seconds)
    cells, each spread evenly over its span. Everything is moved to seconds after `start`
    first: differences of epoch seconds near 1.7e9 lose a quarter microsecond each, which
    summed over thousands of short tries would push a full worker above one."""
    cells = [(s - start, e - start, busy) for s, e, busy in cells]
    start = 0.0
    total = [0.0] * buckets
    horizon = start + width * buckets
    for s, e, busy in cells:
        if e <= start or s >= horizon or busy <= 0:
            continue
        rate = busy / (e - s)
        lo, hi = max(s, start), min(e, horizon)
        first = int((lo - start) // width)
        last = min(int((hi - start) // width), buckets - 1)
        for b in range(first, last + 1):
            b_lo, b_hi = start + b * width, start + (b + 1) * width
            overlap = min(hi, b_hi) - max(lo, b_lo)
            if overlap > 0:
                total[b] += rate * overlap
    return [t / width for t in total]


def _intervals_to_cells(
    rows: Iterable[tuple[float | None, float | None]],
) -> list[tuple[float, float, float]]:
    return [(s, e, e - s) for s, e in rows if s is not None and e is not None and e > s]


def busy_series(
    conn: sqlite3.Connection, run_id: str, start: float, end: float, buckets: int
) -> list[float]:
    """Workers busy (average number of tries running on their workers) in each of `buckets`
    equal buckets from `start` to `end` (epoch seconds for taskscope's runs; for Parsl's, the
    same numbers computed from its local-time text)."""
    info = describe_database(conn)
    width = max(end - start, 1e-3) / buckets
    if has_rollup(conn, info, run_id):
        tries = conn.execute(
            "SELECT COUNT(*) FROM (SELECT 1 FROM taskscope_try_run WHERE run_id = ? LIMIT ?)",
            (run_id, EXACT_TRIES + 1),
        ).fetchone()[0]
        if tries <= EXACT_TRIES:
            rows = conn.execute(
                f"SELECT r.time_running, COALESCE(r.time_ended, :end) {_TRY_RUN_ON_WORKERS}",
                {"run": run_id, "end": end},
            ).fetchall()
            return _rebin(_intervals_to_cells(rows), start, width, buckets)
        # Per minute for a long run (a day on 256 workers is 22 million worker-seconds).
        minute = end - start > MINUTE_LEVEL_ABOVE_S and info.has("taskscope_occupancy_minute")
        size = MINUTE_SECONDS if minute else BUCKET_SECONDS
        table = "taskscope_occupancy_minute" if minute else "taskscope_occupancy"
        cells = [
            (b * size, (b + 1) * size, busy)
            for b, busy in conn.execute(
                f"SELECT bucket, SUM(busy_s) FROM {table} WHERE run_id = ? GROUP BY bucket",
                (run_id,),
            )
        ]
        return _rebin(cells, start, width, buckets)
    origin = math.floor(start)
    intervals = status_intervals(conn, info, run_id, end - origin, origin)
    return _rebin(_intervals_to_cells(intervals), start - origin, width, buckets)


def status_intervals(
    conn: sqlite3.Connection, info: DatabaseInfo, run_id: str, end: float, origin: int
) -> list[tuple[float, float]]:
    """(running, running_ended) of every try from the status history, in seconds after
    `origin` (whole epoch seconds, reading the stored text as UTC); a try still running ends
    at `end` (seconds after `origin`); join apps excluded."""
    if not info.has("status"):
        return []
    sql = (
        f"SELECT {SINCE_ORIGIN_SQL.format(col='p.s')}, "
        f"COALESCE({SINCE_ORIGIN_SQL.format(col='p.e')}, :end) {_status_tries_on_workers(info)}"
    )
    return conn.execute(sql, {"run": run_id, "end": end, "origin": origin}).fetchall()


def busy_now(conn: sqlite3.Connection, run_id: str) -> int:
    """Workers busy now: the tries that have started on their worker and not ended there,
    the same intervals `busy_series` averages, read where they are still open. The kernel's
    task states are not asked: a task can be `running` to the kernel while no worker runs it."""
    info = describe_database(conn)
    if has_rollup(conn, info, run_id):
        sql = f"SELECT COUNT(*) {_TRY_RUN_ON_WORKERS} AND r.time_ended IS NULL"
    elif info.has("status"):
        sql = f"SELECT COUNT(*) {_status_tries_on_workers(info)} AND p.e IS NULL"
    else:
        return 0
    return int(conn.execute(sql, {"run": run_id}).fetchone()[0])


def _status_tries_on_workers(info: DatabaseInfo) -> str:
    """FROM ... WHERE ... of each try's first running (p.s) and running_ended (p.e) in the
    status history, tries that never ran on a worker and join apps left out."""
    internal = ""
    if info.has("try"):
        internal = (
            " AND NOT EXISTS (SELECT 1 FROM try y WHERE y.run_id = :run AND y.task_id = "
            f"p.task_id AND y.try_id = p.try_id AND y.task_executor IN {INTERNAL_EXECUTORS})"
        )
    return f"""
        FROM (SELECT task_id, try_id,
                     MIN(CASE WHEN task_status_name = 'running' THEN timestamp END) AS s,
                     MIN(CASE WHEN task_status_name = 'running_ended' THEN timestamp END) AS e
              FROM status WHERE run_id = :run
              AND task_status_name IN ('running', 'running_ended')
              GROUP BY task_id, try_id LIMIT -1) p
        WHERE p.s IS NOT NULL{internal}"""


def app_run_times(conn: sqlite3.Connection, run_id: str) -> dict[str, tuple[int, float]]:
    """app -> (ended tries, mean run time in seconds) on the workers' clocks; {} when the
    writer kept no worker times for the run (the caller falls back to the status history)."""
    info = describe_database(conn)
    if not (info.has("taskscope_occupancy") and has_rollup(conn, info, run_id)):
        return {}
    return {
        app: (int(n), busy / n)
        for app, busy, n in conn.execute(
            "SELECT app, SUM(busy_s), SUM(tries_ended) FROM taskscope_occupancy "
            "WHERE run_id = ? GROUP BY app",
            (run_id,),
        )
        if n
    }


def run_time_sql(try_alias: str = "y") -> str:
    """SQL for a try's run time on its worker's clock, from the status history (an index
    seek per try on status's primary key): running -> running_ended."""

    def at(state: str) -> str:
        return (
            f"(SELECT MIN(s.timestamp) FROM status s WHERE s.task_id = {try_alias}.task_id "
            f"AND s.run_id = {try_alias}.run_id AND s.task_status_name = '{state}' "
            f"AND s.try_id = {try_alias}.try_id)"
        )

    return f"((julianday({at('running_ended')}) - julianday({at('running')})) * 86400.0)"


def task_worker_tries(conn: sqlite3.Connection, run_id: str, task_id: int) -> dict[int, WorkerTry]:
    """try_id -> the try as its worker saw it, for one task (taskscope's runs only)."""
    info = describe_database(conn)
    if not info.has("taskscope_try_run"):
        return {}
    return {
        row[1]: WorkerTry(*row)
        for row in conn.execute(
            "SELECT task_id, try_id, worker, app, time_running, time_ended "
            "FROM taskscope_try_run WHERE run_id = ? AND task_id = ?",
            (run_id, task_id),
        )
    }
