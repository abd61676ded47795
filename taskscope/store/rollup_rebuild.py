"""Build a run's worker and state rollups from its Parsl tables, as the writer would have.

For databases made without the writer (the synthetic databases of tests and benchmarks) and
for any run whose rollups are missing. Workers are reconstructed: each host's tries are
given, in start order, to the first of its lanes that is free (the fewest lanes that hold
them without overlap), named ``HOST/wN``.
"""

from __future__ import annotations

import heapq
import sqlite3
from typing import Any

from taskscope.store.app_edges import INSERT_DEPENDENT
from taskscope.store.task_state import STATE_TABLE, TASK_DURATION_SQL
from taskscope.store.worker_query import SINCE_ORIGIN_SQL
from taskscope.store.worker_rollup import (
    BUCKET_SECONDS,
    INTERNAL_EXECUTOR_LABELS,
    MINUTE_SECONDS,
    UPSERT_APP_RUN_TOTAL,
    UPSERT_LONGEST,
    UPSERT_OCCUPANCY,
    UPSERT_OCCUPANCY_MINUTE,
    UPSERT_TRY_RUN,
    add_occupancy,
)


def rebuild_rollups(conn: sqlite3.Connection, run_id: str) -> None:
    """Fill taskscope_try_run, taskscope_occupancy, taskscope_run_extra.longest_try_s and
    taskscope_state_flow for `run_id` (an open write connection; the caller commits)."""
    params = {"run": run_id, "origin": 0}
    rows = conn.execute(
        f"""SELECT p.task_id, p.try_id, COALESCE(y.hostname, ''), t.task_func_name,
                   COALESCE(y.task_executor, ''), {SINCE_ORIGIN_SQL.format(col="p.s")},
                   {SINCE_ORIGIN_SQL.format(col="p.e")}
            FROM (SELECT task_id, try_id,
                         MIN(CASE WHEN task_status_name = 'running' THEN timestamp END) AS s,
                         MIN(CASE WHEN task_status_name = 'running_ended' THEN timestamp END) AS e
                  FROM status WHERE run_id = :run
                  AND task_status_name IN ('running', 'running_ended')
                  GROUP BY task_id, try_id LIMIT -1) p
            JOIN task t ON t.task_id = p.task_id AND t.run_id = :run
            LEFT JOIN try y ON y.try_id = p.try_id AND y.task_id = p.task_id AND y.run_id = :run
            WHERE p.s IS NOT NULL ORDER BY 6""",
        params,
    ).fetchall()
    lanes: dict[str, list[tuple[float, int]]] = {}  # host -> heap of (free from, lane)
    lane_count: dict[str, int] = {}
    try_rows: list[tuple[Any, ...]] = []
    occupancy: dict[tuple[str, int, str, str], list[float]] = {}
    minutes: dict[tuple[str, int, str, str], list[float]] = {}
    app_totals: dict[tuple[str, str], list[float]] = {}  # (run, app) -> [busy s, tries]
    longest = 0.0
    for task_id, try_id, host, app, executor, start, end in rows:
        heap = lanes.setdefault(host, [])
        if heap and heap[0][0] <= start:
            _, lane = heapq.heappop(heap)
        else:
            lane = lane_count[host] = lane_count.get(host, 0) + 1
        heapq.heappush(heap, (end if end is not None else float("inf"), lane))
        worker = f"{host or 'host'}/w{lane}"
        try_rows.append((run_id, task_id, try_id, worker, app, start, end))
        if end is None or executor in INTERNAL_EXECUTOR_LABELS:
            continue
        longest = max(longest, end - start)
        add_occupancy(occupancy, run_id, worker, app, start, end, BUCKET_SECONDS)
        add_occupancy(minutes, run_id, worker, app, start, end, MINUTE_SECONDS)
        total = app_totals.setdefault((run_id, app), [0.0, 0])
        total[0] += end - start
        total[1] += 1
    conn.executemany(UPSERT_TRY_RUN, try_rows)
    conn.executemany(UPSERT_OCCUPANCY, [(*k, v[0], v[1]) for k, v in occupancy.items()])
    conn.executemany(UPSERT_OCCUPANCY_MINUTE, [(*k, v[0], v[1]) for k, v in minutes.items()])
    add_ten_minute_occupancy(conn, run_id)
    conn.executemany(UPSERT_APP_RUN_TOTAL, [(*k, v[0], v[1]) for k, v in app_totals.items()])
    conn.execute(UPSERT_LONGEST, (run_id, longest))
    rebuild_state_flow(conn, run_id)
    rebuild_dependents(conn, run_id)


def rebuild_state_flow(conn: sqlite3.Connection, run_id: str) -> None:
    """taskscope_state_flow, its per-minute twin and taskscope_app_total, from the status
    history (a retry's pending and launched named as the writer names them)."""
    for table in ("taskscope_state_flow", "taskscope_state_flow_minute", "taskscope_app_total"):
        conn.execute(f"DELETE FROM {table} WHERE run_id = ?", (run_id,))
    name = (
        "CASE WHEN s.try_id > 0 AND s.task_status_name = 'pending' THEN 'pending_retry' "
        "WHEN s.try_id > 0 AND s.task_status_name = 'launched' THEN 'relaunched' "
        "ELSE s.task_status_name END"
    )
    second = f"CAST({SINCE_ORIGIN_SQL.format(col='s.timestamp')} AS INTEGER)"
    conn.execute(
        f"""INSERT INTO taskscope_state_flow (run_id, bucket, app, state, entered)
            SELECT :run, {second} AS b, t.task_func_name, {name} AS n, COUNT(*)
            FROM status s JOIN task t ON t.task_id = s.task_id AND t.run_id = :run
            WHERE s.run_id = :run GROUP BY b, t.task_func_name, n""",
        {"run": run_id, "origin": 0},
    )
    conn.execute(
        """INSERT INTO taskscope_state_flow_minute (run_id, bucket, app, state, entered)
           SELECT run_id, bucket / 60, app, state, SUM(entered) FROM taskscope_state_flow
           WHERE run_id = ? GROUP BY bucket / 60, app, state""",
        (run_id,),
    )
    conn.execute(
        """INSERT INTO taskscope_app_total (run_id, app, state, entered)
           SELECT run_id, app, state, SUM(entered) FROM taskscope_state_flow_minute
           WHERE run_id = ? GROUP BY app, state""",
        (run_id,),
    )


def rebuild_dependents(conn: sqlite3.Connection, run_id: str) -> None:
    rows: list[tuple[Any, ...]] = []
    for task_id, depends in conn.execute(
        "SELECT task_id, task_depends FROM task WHERE run_id = ? AND task_depends != ''",
        (run_id,),
    ):
        rows.extend((run_id, int(d), task_id) for d in depends.split(",") if d.strip().isdigit())
    for task_id, joins in conn.execute(
        "SELECT task_id, task_joins FROM try WHERE run_id = ? AND task_joins != ''", (run_id,)
    ):
        rows.extend((run_id, int(d), task_id) for d in joins.split(",") if d.strip().isdigit())
    conn.executemany(INSERT_DEPENDENT, rows)


def add_ten_minute_occupancy(conn: sqlite3.Connection, run_id: str) -> None:
    """The per-ten-minutes occupancy of `run_id` as sums of its per-minute rows (a database
    made before the writer kept it; ten minutes are whole minutes, so the sums are exact)."""
    conn.execute("DELETE FROM taskscope_occupancy_10min WHERE run_id = ?", (run_id,))
    conn.execute(
        """INSERT INTO taskscope_occupancy_10min (run_id, bucket, worker, app, busy_s, tries_ended)
           SELECT run_id, bucket / 10, worker, app, SUM(busy_s), SUM(tries_ended)
           FROM taskscope_occupancy_minute WHERE run_id = ? GROUP BY bucket / 10, worker, app""",
        (run_id,),
    )


def add_missing_rollups(conn: sqlite3.Connection, run_id: str) -> None:
    """For a run whose per-second worker rollup exists but whose later rollups do not (a
    database made before they were kept): the per-minute occupancy and per-app run totals
    are sums of the per-second rows; flow, totals and dependents come from the history."""
    conn.execute("DELETE FROM taskscope_occupancy_minute WHERE run_id = ?", (run_id,))
    conn.execute(
        """INSERT INTO taskscope_occupancy_minute (run_id, bucket, worker, app, busy_s, tries_ended)
           SELECT run_id, bucket / 60, worker, app, SUM(busy_s), SUM(tries_ended)
           FROM taskscope_occupancy WHERE run_id = ? GROUP BY bucket / 60, worker, app""",
        (run_id,),
    )
    add_ten_minute_occupancy(conn, run_id)
    conn.execute("DELETE FROM taskscope_app_run_total WHERE run_id = ?", (run_id,))
    conn.execute(
        """INSERT INTO taskscope_app_run_total (run_id, app, busy_s, tries_ended)
           SELECT run_id, app, SUM(busy_s), SUM(tries_ended) FROM taskscope_occupancy_minute
           WHERE run_id = ? GROUP BY app""",
        (run_id,),
    )
    rebuild_state_flow(conn, run_id)
    rebuild_dependents(conn, run_id)


def add_task_durations(conn: sqlite3.Connection, run_id: str) -> None:
    """Store the duration of each of the run's returned tasks in its state row, as the writer
    now does when a task ends: for a run written before the writer kept them."""
    conn.execute(
        f"UPDATE {STATE_TABLE} AS z SET duration = (SELECT {TASK_DURATION_SQL} FROM task t "
        "WHERE t.task_id = z.task_id AND t.run_id = z.run_id) WHERE z.run_id = ?",
        (run_id,),
    )
