"""Build a run's worker and state rollups from its Parsl tables, as the writer would have.

For databases made without the writer (the synthetic databases of tests and benchmarks) and
for any run whose rollups are missing. Workers are reconstructed: each host's tries are
given, in start order, to the first of its lanes that is free (the fewest lanes that hold
them without overlap), named ``HOST/wN``.
"""

from __future__ import annotations

import heapq
import sqlite3

from taskscope.store.state_flow import UPSERT_STATE_FLOW
from taskscope.store.worker_query import SINCE_ORIGIN_SQL
from taskscope.store.worker_rollup import (
    BUCKET_SECONDS,
    INTERNAL_EXECUTOR_LABELS,
    MINUTE_SECONDS,
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
                   COALESCE(y.task_executor, ''), {SINCE_ORIGIN_SQL.format(col='p.s')},
                   {SINCE_ORIGIN_SQL.format(col='p.e')}
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
    try_rows: list[tuple] = []
    occupancy: dict = {}
    minutes: dict = {}
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
    conn.executemany(UPSERT_TRY_RUN, try_rows)
    conn.executemany(UPSERT_OCCUPANCY, [(*k, v[0], v[1]) for k, v in occupancy.items()])
    conn.executemany(UPSERT_OCCUPANCY_MINUTE, [(*k, v[0], v[1]) for k, v in minutes.items()])
    conn.execute(UPSERT_LONGEST, (run_id, longest))
    bucket = f"CAST({SINCE_ORIGIN_SQL.format(col='s.timestamp')} / {BUCKET_SECONDS} AS INTEGER)"
    conn.executemany(
        UPSERT_STATE_FLOW,
        conn.execute(
            f"""SELECT :run, {bucket} AS b, t.task_func_name, s.task_status_name, COUNT(*)
                FROM status s JOIN task t ON t.task_id = s.task_id AND t.run_id = :run
                WHERE s.run_id = :run GROUP BY b, t.task_func_name, s.task_status_name""",
            params,
        ).fetchall(),
    )
