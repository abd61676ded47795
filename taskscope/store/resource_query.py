"""Resource usage: per-try sample series, run-wide usage over time, per-app distributions.

Run-wide usage is computed exactly rather than by counting point samples: every sample
describes the period since the previous sample of its try (or since the try started), so
memory and CPU rate are piecewise-constant over those periods, and each time bucket gets the
time-weighted average of their sum. Workers busy is the same sum over try intervals. The
"partial seconds counted as whole" and "sawtooth" artefacts of Parsl's plots cannot happen.
"""

from __future__ import annotations

import sqlite3

from taskscope.store.readonly import describe_database
from taskscope.store.records import (
    AppDistribution,
    BoxStats,
    Capacity,
    ResourceSample,
    UsageSeries,
)
from taskscope.store.timestamps import format_timestamp, parse_timestamp, seconds_between_sql

DEFAULT_BUCKETS = 200
SERIES_LIMIT = 5000
_CPU = "(COALESCE(psutil_process_time_user, 0) + COALESCE(psutil_process_time_system, 0))"


def resource_series(
    conn: sqlite3.Connection, run_id: str, task_id: int, limit: int = SERIES_LIMIT
) -> list[ResourceSample]:
    """The resource samples of every try of one task, in time order."""
    if not describe_database(conn).has("resource"):
        return []
    since_start = seconds_between_sql(
        "COALESCE((SELECT y.task_try_time_running FROM try y WHERE y.run_id = r.run_id "
        "AND y.task_id = r.task_id AND y.try_id = r.try_id), "
        "MIN(r.timestamp) OVER (PARTITION BY r.try_id))",
        "r.timestamp",
    )
    rows = conn.execute(
        f"SELECT r.try_id, r.timestamp, {since_start}, psutil_process_time_user, "
        "psutil_process_time_system, psutil_process_memory_resident, "
        "psutil_process_memory_virtual, psutil_process_disk_read, psutil_process_disk_write "
        "FROM resource r WHERE r.run_id = ? AND r.task_id = ? ORDER BY r.try_id, r.timestamp "
        "LIMIT ?",
        (run_id, task_id, max(1, int(limit))),
    ).fetchall()
    return [ResourceSample(*row) for row in rows]


def _span(conn: sqlite3.Connection, run_id: str) -> tuple[str | None, str | None]:
    """First and last moment of the run: its start and its end (or its latest event)."""
    row = conn.execute(
        "SELECT time_began, time_completed FROM workflow WHERE run_id = ?", (run_id,)
    ).fetchone()
    if row is None:
        return None, None
    began, ended = row
    candidates = [ended] if ended else []
    for sql in (
        "SELECT MAX(timestamp) FROM status WHERE run_id = ?",
        "SELECT MAX(timestamp) FROM resource WHERE run_id = ?",
    ):
        try:
            value = conn.execute(sql, (run_id,)).fetchone()[0]
        except sqlite3.OperationalError:
            value = None  # a table that does not exist
        if value:
            candidates.append(value)
    parsed = [p for p in (parse_timestamp(c) for c in candidates) if p is not None]
    return began, (format_timestamp(max(parsed)) if parsed else began)


def _bucket_sums(
    conn: sqlite3.Connection, intervals_sql: str, params: dict, buckets: int, width: float
) -> tuple[list[float], list[float]]:
    """Time-weighted bucket averages of two weights over intervals (s, e, w1, w2) in seconds
    since the run's start; a difference array handles intervals that span many buckets."""
    sql = f"""
    WITH iv AS ({intervals_sql}),
    clipped AS (SELECT MAX(s, 0.0) AS s, MIN(e, :horizon) AS e, w1, w2 FROM iv),
    ib AS (SELECT s, e, w1, w2, MIN(CAST(s / :width AS INTEGER), :last) AS bs,
                  MIN(CAST(e / :width AS INTEGER), :last) AS be FROM clipped WHERE e > s),
    contrib(b, p1, p2, d1, d2) AS (
        SELECT bs, w1 * (MIN(e, (bs + 1) * :width) - s), w2 * (MIN(e, (bs + 1) * :width) - s),
               0, 0 FROM ib
        UNION ALL SELECT be, w1 * (e - be * :width), w2 * (e - be * :width), 0, 0
               FROM ib WHERE be > bs
        UNION ALL SELECT bs + 1, 0, 0, w1, w2 FROM ib WHERE be > bs + 1
        UNION ALL SELECT be, 0, 0, -w1, -w2 FROM ib WHERE be > bs + 1)
    SELECT b, SUM(p1), SUM(p2), SUM(d1), SUM(d2) FROM contrib GROUP BY b ORDER BY b
    """
    first, second = [0.0] * buckets, [0.0] * buckets
    partial1, partial2, diff1, diff2 = ([0.0] * buckets for _ in range(4))
    args = {**params, "width": width, "last": buckets - 1, "horizon": width * buckets}
    for b, p1, p2, d1, d2 in conn.execute(sql, args):
        if 0 <= b < buckets:
            partial1[b], partial2[b], diff1[b], diff2[b] = p1 or 0, p2 or 0, d1 or 0, d2 or 0
    full1 = full2 = 0.0
    for b in range(buckets):
        full1 += diff1[b]
        full2 += diff2[b]
        first[b] = (partial1[b] + full1 * width) / width
        second[b] = (partial2[b] + full2 * width) / width
    return first, second


def capacity(conn: sqlite3.Connection, run_id: str) -> Capacity:
    """What the run had: CPUs and memory once per host, workers once per worker pool (the
    latest row of each), never summed over the node table's many rows."""
    if not describe_database(conn).has("node"):
        return Capacity(0, None, None, None)
    hosts: dict[str, tuple[int, float]] = {}
    workers = 0
    for hostname, cpus, memory, worker_count, _ in conn.execute(
        "SELECT hostname, cpu_count, total_memory, worker_count, MAX(timestamp) FROM node "
        "WHERE run_id = ? GROUP BY hostname, uid, block_id LIMIT 100000",
        (run_id,),
    ):
        old_cpus, old_memory = hosts.get(hostname, (0, 0.0))
        hosts[hostname] = (max(old_cpus, cpus or 0), max(old_memory, memory or 0))
        workers += worker_count or 0
    if not hosts:
        return Capacity(0, None, None, None)
    return Capacity(
        nodes=len(hosts),
        cpus=sum(c for c, _ in hosts.values()),
        memory_bytes=sum(m for _, m in hosts.values()),
        workers=workers,
    )


def run_usage(
    conn: sqlite3.Connection, run_id: str, buckets: int = DEFAULT_BUCKETS
) -> UsageSeries | None:
    """CPU cores and memory in use (summed over running tries) and workers busy, over time."""
    info = describe_database(conn)
    if not (info.has_runs and info.has("try")):
        return None
    began, ended = _span(conn, run_id)
    start, end = parse_timestamp(began), parse_timestamp(ended)
    if start is None or end is None:
        return None
    buckets = max(1, min(int(buckets), 2000))
    span = max((end - start).total_seconds(), 1e-3)
    width = span / buckets
    params = {"run": run_id, "began": began, "ended": ended}
    rel = "((julianday({col}) - julianday(:began)) * 86400.0)"
    workers_sql = (
        f"SELECT {rel.format(col='task_try_time_running')} AS s, "
        f"{rel.format(col='COALESCE(task_try_time_returned, :ended)')} AS e, 1.0 AS w1, "
        "0.0 AS w2 FROM try WHERE run_id = :run AND task_try_time_running IS NOT NULL"
    )
    workers, _ = _bucket_sums(conn, workers_sql, params, buckets, width)
    cpu = memory = [0.0] * buckets
    samples = 0
    if info.has("resource"):
        samples = conn.execute(
            "SELECT COUNT(*) FROM resource WHERE run_id = ?", (run_id,)
        ).fetchone()[0]
    if samples:
        # taskscope reports CPU time since the try started; Parsl reports the worker
        # process's total, so only differences between a try's samples count there.
        first_cpu = "0.0" if info.is_taskscope else _CPU
        sampled = f"""
            SELECT timestamp AS t, psutil_process_memory_resident AS rss, {_CPU} AS cpu,
                   LAG(timestamp) OVER w AS prev_t, LAG({_CPU}, 1, {first_cpu}) OVER w AS prev_cpu,
                   task_id, try_id
            FROM resource WHERE run_id = :run
            WINDOW w AS (PARTITION BY task_id, try_id ORDER BY timestamp)"""
        start_of = (
            "COALESCE(prev_t, (SELECT y.task_try_time_running FROM try y WHERE y.run_id = :run "
            "AND y.task_id = x.task_id AND y.try_id = x.try_id), t)"
        )
        intervals = f"""
            SELECT s, e, rss AS w1, CASE WHEN e > s THEN MAX(cpu - prev_cpu, 0) / (e - s)
                   ELSE 0 END AS w2
            FROM (SELECT {rel.format(col=start_of)} AS s, {rel.format(col='t')} AS e,
                         COALESCE(rss, 0) AS rss, cpu, prev_cpu FROM ({sampled}) x)"""
        memory, cpu = _bucket_sums(conn, intervals, params, buckets, width)
    times = [
        format_timestamp(start + (end - start) * (b / buckets)) for b in range(buckets)
    ]
    return UsageSeries(
        bucket_seconds=width,
        times=times,
        cpu_cores=cpu,
        memory_bytes=memory,
        workers_busy=workers,
        capacity=capacity(conn, run_id),
        sample_count=samples,
    )


def _box_stats(conn: sqlite3.Connection, values_sql: str, params: dict) -> dict[str, BoxStats]:
    """Quartiles per app computed in SQL over (app, v) rows."""
    sql = f"""
    WITH v AS ({values_sql}),
    r AS (SELECT app, v, ROW_NUMBER() OVER (PARTITION BY app ORDER BY v) AS rn,
                 COUNT(*) OVER (PARTITION BY app) AS n FROM v WHERE v IS NOT NULL)
    SELECT app, MAX(n), MIN(v),
           MAX(CASE WHEN rn = CAST((n - 1) * 0.25 AS INTEGER) + 1 THEN v END),
           MAX(CASE WHEN rn = CAST((n - 1) * 0.5 AS INTEGER) + 1 THEN v END),
           MAX(CASE WHEN rn = CAST((n - 1) * 0.75 AS INTEGER) + 1 THEN v END),
           MAX(v), AVG(v)
    FROM r GROUP BY app"""
    return {
        app: BoxStats(n, low, q1, median, q3, high, mean)
        for app, n, low, q1, median, q3, high, mean in conn.execute(sql, params)
    }


def app_distributions(conn: sqlite3.Connection, run_id: str) -> list[AppDistribution]:
    """Per app: run time of its tasks, their peak resident memory and their CPU time."""
    info = describe_database(conn)
    if not (info.has("task") and info.has("try")):
        return []
    params = {"run": run_id}
    run_s = seconds_between_sql("y.task_try_time_running", "y.task_try_time_returned")
    durations = _box_stats(
        conn,
        f"SELECT t.task_func_name AS app, SUM({run_s}) AS v FROM try y JOIN task t "
        "ON t.run_id = y.run_id AND t.task_id = y.task_id WHERE y.run_id = :run "
        "GROUP BY y.task_id",
        params,
    )
    memory: dict[str, BoxStats] = {}
    cpu: dict[str, BoxStats] = {}
    if info.has("resource"):
        memory = _box_stats(
            conn,
            "SELECT t.task_func_name AS app, p.v FROM (SELECT task_id, "
            "MAX(psutil_process_memory_resident) AS v FROM resource WHERE run_id = :run "
            "GROUP BY task_id) p JOIN task t ON t.run_id = :run AND t.task_id = p.task_id",
            params,
        )
        floor = "0" if info.is_taskscope else f"MIN({_CPU})"
        cpu = _box_stats(
            conn,
            f"SELECT t.task_func_name AS app, SUM(p.v) AS v FROM (SELECT task_id, "
            f"MAX({_CPU}) - {floor} AS v FROM resource WHERE run_id = :run "
            "GROUP BY task_id, try_id) p JOIN task t ON t.run_id = :run "
            "AND t.task_id = p.task_id GROUP BY p.task_id",
            params,
        )
    apps = sorted(set(durations) | set(memory) | set(cpu))
    return [
        AppDistribution(app, durations.get(app), memory.get(app), cpu.get(app)) for app in apps
    ]
