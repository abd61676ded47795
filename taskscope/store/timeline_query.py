"""The whole run over time, at any size: tasks in each state, and the per-worker task stream.

Tasks in each state come from how many tasks entered each state per second
(``taskscope_state_flow``, kept by the writer; the status history for Parsl's databases).
A task's lifecycle is a fixed path, so at any moment (a retry's pending and launched are
counted as pending_retry and relaunched)

- waiting (pending, dependencies unmet or not yet handed to an executor)
  = pending + (pending_retry, or fail_retryable where retries record no pending)
    - launched - relaunched - memo_done - dep_fail
- queued (launched, no worker has started it) = launched + relaunched - running
- running (on a worker) = running - running_ended
- returning (ended on the worker, result not yet processed; join apps waiting for their
  inner tasks) = running_ended - exec_done - failed - fail_retryable
- done = exec_done + memo_done, failed = failed + dep_fail (both cumulative).

The task stream has one lane per worker (``taskscope_try_run.worker``). For a time window
holding at most EXACT_BARS tries it returns each try; above that, each lane's occupancy by app
over time buckets, from ``taskscope_occupancy`` (per second) or ``taskscope_occupancy_minute``
for long windows, so that what reaches the browser is bounded whatever the run's size.
"""

from __future__ import annotations

import heapq
import math
import sqlite3
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from taskscope.store import totals_query
from taskscope.store.readonly import describe_database
from taskscope.store.run_extra import longest_try_seconds
from taskscope.store.worker_query import SINCE_ORIGIN_SQL, has_rollup, rollup_resolution_s
from taskscope.store.worker_rollup import MINUTE_SECONDS, TEN_MINUTE_SECONDS

BANDS = ("waiting", "queued", "running", "returning", "done", "failed")
EXACT_BARS = 2500
STREAM_COLUMNS = 240  # time columns of the aggregated stream, at most
STREAM_MIN_COLUMNS = 20  # and at least, however many lanes
STREAM_CELLS = 4_000  # lanes x columns of the aggregated stream, about
MINUTE_LEVEL_ABOVE_S = 1800.0  # windows longer than this read the per-minute occupancy
TEN_MINUTE_TABLE = "taskscope_occupancy_10min"
TIMELINE_BUCKETS = 240


@dataclass(frozen=True)
class RunSpan:
    """A run's start and end (or latest event) in epoch seconds (the stored text read as UTC)."""

    start: float
    end: float

    @property
    def seconds(self) -> float:
        return max(self.end - self.start, 1e-3)


def run_span(conn: sqlite3.Connection, run_id: str) -> RunSpan | None:
    """From the workflow row, the latest state flow or status row, and the latest try end."""
    info = describe_database(conn)
    row = conn.execute(
        f"SELECT {SINCE_ORIGIN_SQL.format(col='time_began')}, "
        f"{SINCE_ORIGIN_SQL.format(col='time_completed')} FROM workflow WHERE run_id = :run",
        {"run": run_id, "origin": 0},
    ).fetchone()
    if row is None or row[0] is None:
        return None
    start, end = row
    if end is None:
        candidates = [start]
        if info.has("taskscope_state_flow"):
            last = conn.execute(
                "SELECT MAX(bucket) FROM taskscope_state_flow WHERE run_id = ?", (run_id,)
            ).fetchone()[0]
            if last is not None:
                candidates.append(last + 1.0)
        if len(candidates) == 1 and info.has("status"):
            last = conn.execute(
                f"SELECT {SINCE_ORIGIN_SQL.format(col='MAX(timestamp)')} FROM status "
                "WHERE run_id = :run",
                {"run": run_id, "origin": 0},
            ).fetchone()[0]
            if last is not None:
                candidates.append(last)
        end = max(candidates)
    return RunSpan(start, max(end, start + 1e-3))


@dataclass
class StateTimeline:
    span: RunSpan
    bucket_seconds: float
    times: list[float]  # seconds after the run's start, at the end of each bucket
    bands: dict[str, list[int]]  # band -> tasks in it at each time
    apps: list[str]  # every app of the run
    app: str | None  # the app shown (None: all)


def _flow_rows(
    conn: sqlite3.Connection, run_id: str, app: str | None, long_run: bool
) -> list[tuple[Any, ...]]:
    """(second, state, entered) rows, from the writer's flow (per minute for a long run)
    or the status history."""
    info = describe_database(conn)
    only = " AND app = :app" if app is not None else ""
    table = "taskscope_state_flow_minute" if long_run else "taskscope_state_flow"
    if (
        info.has(table)
        and conn.execute(f"SELECT 1 FROM {table} WHERE run_id = ? LIMIT 1", (run_id,)).fetchone()
    ):
        scale = MINUTE_SECONDS if long_run else 1.0
        # Each row's transitions are placed at the end of its second (or minute): counts at a
        # moment then hold every transition of the whole seconds (minutes) before it and none
        # after, so they are exact at each boundary and never run ahead of the truth. (At the
        # middle of the minute, a bucket's count took in up to 30 s of later transitions:
        # in flight read 20% off on a run of 25 s tasks.)
        at_end = scale - 0.5 - 1e-6
        return conn.execute(
            f"SELECT bucket * {scale} + {at_end}, state, SUM(entered) FROM {table} "
            f"WHERE run_id = :run{only} GROUP BY bucket, state",
            {"run": run_id, "app": app},
        ).fetchall()
    if not info.has("status"):
        return []
    join_app = " AND t.task_func_name = :app" if app is not None else ""
    second = f"CAST({SINCE_ORIGIN_SQL.format(col='s.timestamp')} AS INTEGER)"
    name = (
        "CASE WHEN s.try_id > 0 AND s.task_status_name = 'pending' THEN 'pending_retry' "
        "WHEN s.try_id > 0 AND s.task_status_name = 'launched' THEN 'relaunched' "
        "ELSE s.task_status_name END"
    )
    return conn.execute(
        f"SELECT {second} AS b, {name} AS n, COUNT(*) FROM status s "
        f"{'JOIN task t ON t.task_id = s.task_id AND t.run_id = s.run_id' if app else ''} "
        f"WHERE s.run_id = :run{join_app} GROUP BY b, n",
        {"run": run_id, "app": app, "origin": 0},
    ).fetchall()


def run_apps(conn: sqlite3.Connection, run_id: str) -> list[str]:
    """The run's apps: from the writer's per-app totals (a few rows), else its tasks."""
    totals = totals_query.app_totals(conn, run_id)
    apps = sorted(app for app, states in (totals or {}).items() if states.get("pending"))
    if apps:
        return apps
    return [
        r[0]
        for r in conn.execute(
            "SELECT DISTINCT task_func_name FROM task WHERE run_id = ? ORDER BY 1 LIMIT 500",
            (run_id,),
        )
    ]


def state_timeline(
    conn: sqlite3.Connection,
    run_id: str,
    app: str | None = None,
    buckets: int = TIMELINE_BUCKETS,
) -> StateTimeline | None:
    span = run_span(conn, run_id)
    if span is None:
        return None
    width = span.seconds / buckets
    rows = _flow_rows(conn, run_id, app, span.seconds > MINUTE_LEVEL_ABOVE_S)
    bands = _bands(rows, span.start, width, buckets)
    return StateTimeline(
        span, width, [width * (i + 1) for i in range(buckets)], bands, run_apps(conn, run_id), app
    )


def kernel_in_flight(
    conn: sqlite3.Connection, run_id: str, start: float, end: float, buckets: int
) -> list[float] | None:
    """Tries in the kernel's hands (launched, not yet returned: queued + running +
    returning) at each of `buckets` moments from `start` to `end` (epoch seconds), from the
    writer's flow; None when the run has none."""
    info = describe_database(conn)
    if not info.has("taskscope_state_flow_minute"):
        return None
    width = max(end - start, 1e-3) / buckets
    long_run = end - start > MINUTE_LEVEL_ABOVE_S
    # The flow counts transitions per second (per minute on long runs): finer buckets would
    # read as empty whenever tries start and end inside one of them, so the caller reads
    # the try table instead. (The tolerance: a span cut into whole minutes by division.)
    if width < rollup_resolution_s(end - start) * (1 - 1e-9):
        return None
    table = "taskscope_state_flow_minute" if long_run else "taskscope_state_flow"
    if (
        conn.execute(f"SELECT 1 FROM {table} WHERE run_id = ? LIMIT 1", (run_id,)).fetchone()
        is None
    ):
        return None
    bands = _bands(_flow_rows(conn, run_id, None, long_run), start, width, buckets)
    return [
        float(bands["queued"][i] + bands["running"][i] + bands["returning"][i])
        for i in range(buckets)
    ]


def _bands(
    rows: list[tuple[Any, ...]], start: float, width: float, buckets: int
) -> dict[str, list[int]]:
    """Tasks in each band at the end of each bucket, from (second, state, entered) rows."""
    entered: dict[str, list[int]] = {}
    for second, state, n in rows:
        # A transition in second s counts from the end of the bucket holding s + 0.5.
        b = min(max(int((second + 0.5 - start) // width), 0), buckets - 1)
        entered.setdefault(state, [0] * buckets)[b] += n
    cumulative = {}
    for state, per_bucket in entered.items():
        total, out = 0, []
        for n in per_bucket:
            total += n
            out.append(total)
        cumulative[state] = out
    zero = [0] * buckets

    def c(state: str) -> list[int]:
        return cumulative.get(state, zero)

    def combine(plus: tuple[str, ...], minus: tuple[str, ...]) -> list[int]:
        return [
            max(0, sum(c(s)[i] for s in plus) - sum(c(s)[i] for s in minus)) for i in range(buckets)
        ]

    # A retry waits from its fail_retryable (taskscope) or from its own pending (Parsl's
    # runs record one): count whichever the run has, not both.
    again = "pending_retry" if "pending_retry" in cumulative else "fail_retryable"
    return {
        "waiting": combine(("pending", again), ("launched", "relaunched", "memo_done", "dep_fail")),
        "queued": combine(("launched", "relaunched"), ("running",)),
        "running": combine(("running",), ("running_ended",)),
        "returning": combine(("running_ended",), ("exec_done", "failed", "fail_retryable")),
        "done": combine(("exec_done", "memo_done"), ()),
        "failed": combine(("failed", "dep_fail"), ()),
    }


# ---- the task stream -------------------------------------------------------------------


@dataclass(frozen=True)
class StreamBar:
    """One try on its worker's lane (seconds after the run's start)."""

    lane: str
    task_id: int
    try_id: int
    app: str
    start: float
    end: float | None  # None: still running


class StreamCell(NamedTuple):
    """Seconds a lane spent on an app within one time column (a tuple: a whole run's
    stream has tens of thousands of them, and a frozen dataclass is ~4x slower to make)."""

    lane: str
    column: int
    app: str
    busy_s: float


@dataclass
class TaskStream:
    span: RunSpan
    window: tuple[float, float]  # seconds after the run's start
    lanes: list[str]
    exact: bool
    bars: list[StreamBar] = field(default_factory=list)
    cells: list[StreamCell] = field(default_factory=list)
    column_seconds: float = 0.0
    tries_in_window: int = 0  # exact count up to EXACT_BARS + 1
    source: str = "taskscope"  # or "status history" (lanes reconstructed per host)


def _lanes(
    conn: sqlite3.Connection,
    run_id: str,
    lo: float,
    hi: float,
    table: str = "taskscope_occupancy_minute",
    width: float = MINUTE_SECONDS,
) -> list[str]:
    """Workers busy at some moment of the buckets of `table` (`width` seconds) around
    [lo, hi] (epoch seconds), so that a worker idle throughout the window still gets its
    (empty) lane."""
    lanes = [
        r[0]
        for r in conn.execute(
            f"SELECT DISTINCT worker FROM {table} WHERE run_id = ? AND bucket BETWEEN ? AND ?",
            (run_id, math.floor(lo / width) - 1, math.floor(hi / width) + 1),
        )
    ]
    if not lanes:
        lanes = [
            r[0]
            for r in conn.execute(
                "SELECT DISTINCT worker FROM taskscope_try_run WHERE run_id = ? LIMIT 5000",
                (run_id,),
            )
        ]
    return sorted(lanes, key=_natural)


def _ten_minutes_complete(conn: sqlite3.Connection, run_id: str) -> bool:
    """Whether the run's per-ten-minutes occupancy holds every ended try the per-app totals
    count (the writer keeps both in one transaction; a run written before the level was kept
    has none or only its later tries there)."""
    if not describe_database(conn).has(TEN_MINUTE_TABLE):
        return False
    (kept,) = conn.execute(
        f"SELECT SUM(tries_ended) FROM {TEN_MINUTE_TABLE} WHERE run_id = ?", (run_id,)
    ).fetchone()
    (total,) = conn.execute(
        "SELECT SUM(tries_ended) FROM taskscope_app_run_total WHERE run_id = ?", (run_id,)
    ).fetchone()
    return kept is not None and kept == total


def _natural(text: str) -> list[Any]:
    import re

    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", text or "")]


def task_stream(
    conn: sqlite3.Connection,
    run_id: str,
    start_s: float | None = None,
    end_s: float | None = None,
) -> TaskStream | None:
    """The stream of the window [start_s, end_s] (seconds after the run's start; the whole
    run by default)."""
    span = run_span(conn, run_id)
    if span is None:
        return None
    a = max(0.0, start_s if start_s is not None else 0.0)
    b = min(span.seconds, end_s if end_s is not None else span.seconds)
    if b <= a:
        b = min(span.seconds, a + 1.0)
        a = max(0.0, b - 1.0)
    info = describe_database(conn)
    if not has_rollup(conn, info, run_id):
        return _stream_from_status(conn, run_id, span, a, b)
    lo, hi = span.start + a, span.start + b
    back = longest_try_seconds(conn, run_id)
    params = {"run": run_id, "lo": lo, "hi": hi, "from": lo - back - 1.0}
    window_sql = (
        "FROM taskscope_try_run WHERE run_id = :run AND time_running BETWEEN :from AND :hi "
        "AND (time_ended IS NULL OR time_ended >= :lo)"
    )
    count = conn.execute(
        f"SELECT COUNT(*) FROM (SELECT 1 {window_sql} LIMIT {EXACT_BARS + 1})", params
    ).fetchone()[0]
    minute = (b - a) > MINUTE_LEVEL_ABOVE_S
    exact = count <= EXACT_BARS
    if exact:
        stream = TaskStream(span, (a, b), _lanes(conn, run_id, lo, hi), True, tries_in_window=count)
        stream.bars = [
            StreamBar(
                worker or "?",
                task_id,
                try_id,
                app or "?",
                s - span.start,
                None if e is None else e - span.start,
            )
            for task_id, try_id, worker, app, s, e in conn.execute(
                f"SELECT task_id, try_id, worker, app, time_running, time_ended {window_sql} "
                "ORDER BY time_running",
                params,
            )
        ]
        return stream
    width = MINUTE_SECONDS if minute else 1.0
    table = "taskscope_occupancy_minute" if minute else "taskscope_occupancy"
    # A long window may read the ten-minute level: a tenth of the rows to group, which with
    # many workers is most of the time (180,000 worker-minutes: ~300 ms).
    coarse = minute and _ten_minutes_complete(conn, run_id)
    lanes = (
        _lanes(conn, run_id, lo, hi, TEN_MINUTE_TABLE, TEN_MINUTE_SECONDS)
        if coarse
        else _lanes(conn, run_id, lo, hi)
    )
    # Fewer columns for many lanes: what reaches the browser stays near STREAM_CELLS bars.
    columns = max(STREAM_MIN_COLUMNS, min(STREAM_COLUMNS, STREAM_CELLS // max(1, len(lanes))))
    column_s = max((b - a) / columns, width)
    if coarse and column_s * 1.25 >= TEN_MINUTE_SECONDS:  # whole ten minutes, <= 25% wider
        width, table = TEN_MINUTE_SECONDS, TEN_MINUTE_TABLE
        column_s = math.ceil(column_s / width) * width
    columns = max(1, math.ceil((b - a) / column_s))
    stream = TaskStream(span, (a, b), lanes, False, tries_in_window=count)
    # Grouped in SQL: at most lanes x columns x apps rows come back, whatever the run's size.
    stream.cells = [
        StreamCell(worker, min(max(int(column), 0), columns - 1), app, busy)
        for worker, column, app, busy in conn.execute(
            f"SELECT worker, CAST((bucket * :w + :w / 2 - :lo) / :cs AS INTEGER) AS c, app, "
            f"SUM(busy_s) FROM {table} WHERE run_id = :run AND bucket BETWEEN :b0 AND :b1 "
            "GROUP BY worker, c, app",
            {
                "run": run_id,
                "b0": math.floor(lo / width),
                "b1": math.floor(hi / width),
                "w": width,
                "lo": lo,
                "cs": column_s,
            },
        )
    ]
    stream.column_seconds = column_s
    return stream


def _stream_from_status(
    conn: sqlite3.Connection, run_id: str, span: RunSpan, a: float, b: float
) -> TaskStream:
    """Parsl's databases name no worker: each host's tries, in start order, go to the first
    of its lanes that is free. Exact bars only (these databases are small)."""
    origin = math.floor(span.start)
    info = describe_database(conn)
    host_join = (
        ("LEFT JOIN try y ON y.try_id = p.try_id AND y.task_id = p.task_id AND y.run_id = :run")
        if info.has("try")
        else ""
    )
    host = "COALESCE(y.hostname, '')" if info.has("try") else "''"
    rows = conn.execute(
        f"""SELECT p.task_id, p.try_id, {host}, t.task_func_name,
                   {SINCE_ORIGIN_SQL.format(col="p.s")}, {SINCE_ORIGIN_SQL.format(col="p.e")}
            FROM (SELECT task_id, try_id,
                         MIN(CASE WHEN task_status_name = 'running' THEN timestamp END) AS s,
                         MIN(CASE WHEN task_status_name = 'running_ended' THEN timestamp END) AS e
                  FROM status WHERE run_id = :run
                  AND task_status_name IN ('running', 'running_ended')
                  GROUP BY task_id, try_id LIMIT -1) p
            JOIN task t ON t.task_id = p.task_id AND t.run_id = :run {host_join}
            WHERE p.s IS NOT NULL ORDER BY 5 LIMIT 200000""",
        {"run": run_id, "origin": origin},
    ).fetchall()
    shift = span.start - origin
    free: dict[str, list[tuple[float, int]]] = {}
    count: dict[str, int] = {}
    bars = []
    for task_id, try_id, hostname, app, s, e in rows:
        heap = free.setdefault(hostname, [])
        if heap and heap[0][0] <= s:
            _, lane = heapq.heappop(heap)
        else:
            lane = count[hostname] = count.get(hostname, 0) + 1
        heapq.heappush(heap, (e if e is not None else float("inf"), lane))
        start, end = s - shift, None if e is None else e - shift
        if start <= b and (end is None or end >= a):
            bars.append(
                StreamBar(f"{hostname or 'host'} #{lane}", task_id, try_id, app, start, end)
            )
    lanes = sorted({bar.lane for bar in bars}, key=_natural)
    stream = TaskStream(
        span,
        (a, b),
        lanes,
        len(bars) <= EXACT_BARS,
        tries_in_window=len(bars),
        source="status history",
    )
    if stream.exact:
        stream.bars = bars
        return stream
    column_s = (b - a) / STREAM_COLUMNS
    cells: dict[tuple[str, int, str], float] = {}
    for bar in bars:  # each try's time, split over the columns it covers
        lo, hi = max(bar.start, a), min(bar.end if bar.end is not None else b, b)
        column = int((lo - a) // column_s)
        while lo < hi and column < STREAM_COLUMNS:
            edge = min(hi, a + (column + 1) * column_s)
            key = (bar.lane, column, bar.app)
            cells[key] = cells.get(key, 0.0) + (edge - lo)
            lo, column = edge, column + 1
    stream.cells = [StreamCell(w, col, app, busy) for (w, col, app), busy in cells.items()]
    stream.column_seconds = column_s
    return stream


def tasks_in_window(
    conn: sqlite3.Connection,
    run_id: str,
    start_s: float,
    end_s: float,
    app: str | None = None,
    limit: int = 60,
) -> list[int]:
    """Tasks with a try on a worker during [start_s, end_s] (seconds after the run's start),
    of `app` if given, earliest first: the rows of a per-task Gantt of that window."""
    span = run_span(conn, run_id)
    info = describe_database(conn)
    if span is None or not has_rollup(conn, info, run_id):
        return []
    lo, hi = span.start + start_s, span.start + end_s
    back = longest_try_seconds(conn, run_id)
    only = " AND app = :app" if app else ""
    return [
        r[0]
        for r in conn.execute(
            "SELECT DISTINCT task_id FROM (SELECT task_id FROM taskscope_try_run WHERE run_id = "
            ":run "
            "AND time_running BETWEEN :from AND :hi AND (time_ended IS NULL OR time_ended >= :lo)"
            f"{only} ORDER BY time_running LIMIT :limit)",
            {
                "run": run_id,
                "from": lo - back - 1.0,
                "lo": lo,
                "hi": hi,
                "app": app,
                "limit": limit,
            },
        )
    ]
