"""A whole run's activity over time, aggregated: workers busy per app, tasks finished.

For the offline report and terminal views, where a Gantt chart of every task would not fit:
the run is cut into equal time buckets and each bucket gets the time-weighted average number
of tries running of each app (exact, not point samples), plus how many tasks returned in it.
The cost is one grouped pass over the run's tries and one over its tasks, whatever its size;
the result holds at most `MAX_APPS` series of `buckets` numbers.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from taskscope.store.readonly import describe_database
from taskscope.store.resource_query import INTERNAL_EXECUTORS, _span
from taskscope.store.timestamps import format_timestamp, parse_timestamp

DEFAULT_BUCKETS = 200
MAX_APPS = 12  # the busiest apps get their own series; the rest are summed as OTHER_APP
OTHER_APP = "(other apps)"


@dataclass(frozen=True)
class RunActivity:
    bucket_seconds: float
    times: list[str]  # start of each bucket, in the run's timestamp convention
    busy_by_app: dict[str, list[float]]  # app -> average tries running in each bucket
    finished: list[int]  # tasks that returned in each bucket
    busy_seconds_by_app: dict[str, float]  # every app's total try run time (seconds)


def _keyed_bucket_averages(
    rows: list[tuple[str, int, int, float, float, float]], buckets: int, width: float
) -> dict[str, list[float]]:
    """Per key, time-weighted bucket averages from grouped interval sums.

    Each row is (key, first bucket, last bucket, count, sum of starts, sum of ends) of the
    intervals that start in bucket bs and end in bucket be: an interval's overlap with each
    bucket is linear in those sums, so a group expands exactly into its two end buckets plus a
    constant over the buckets between (added through a difference array)."""
    partial: dict[str, list[float]] = {}
    diff: dict[str, list[float]] = {}
    for key, bs, be, n, sum_s, sum_e in rows:
        if not (0 <= bs <= be < buckets):
            continue
        p = partial.setdefault(key, [0.0] * buckets)
        d = diff.setdefault(key, [0.0] * (buckets + 1))
        if bs == be:
            p[bs] += sum_e - sum_s
            continue
        p[bs] += n * (bs + 1) * width - sum_s
        p[be] += sum_e - n * be * width
        d[bs + 1] += n
        d[be] -= n
    result = {}
    for key, p in partial.items():
        running, d, series = 0.0, diff[key], [0.0] * buckets
        for b in range(buckets):
            running += d[b]
            series[b] = (p[b] + running * width) / width
        result[key] = series
    return result


def run_activity(
    conn: sqlite3.Connection, run_id: str, buckets: int = DEFAULT_BUCKETS
) -> RunActivity | None:
    """Workers busy per app and tasks finished, over the run's span; None without tries."""
    info = describe_database(conn)
    if not (info.has_runs and info.has("try") and info.has("task")):
        return None
    began, ended = _span(conn, run_id)
    start, end = parse_timestamp(began), parse_timestamp(ended)
    if start is None or end is None:
        return None
    buckets = max(1, min(int(buckets), 2000))
    width = max((end - start).total_seconds(), 1e-3) / buckets
    rel = "((julianday({col}) - julianday(:began)) * 86400.0)"
    params = {
        "run": run_id,
        "began": began,
        "ended": ended,
        "width": width,
        "last": buckets - 1,
        "horizon": width * buckets,
    }
    # Tries first (their (run_id, task_id) index), then each try's task by primary key.
    intervals = (
        f"SELECT t.task_func_name AS app, MAX({rel.format(col='y.task_try_time_running')}, 0.0) "
        f"AS s, MIN({rel.format(col='COALESCE(y.task_try_time_returned, :ended)')}, :horizon) "
        "AS e FROM try y CROSS JOIN task t ON t.task_id = y.task_id AND t.run_id = y.run_id "
        "WHERE y.run_id = :run AND y.task_try_time_running IS NOT NULL "
        f"AND y.task_executor NOT IN {INTERNAL_EXECUTORS} LIMIT -1"
    )
    grouped = conn.execute(
        f"SELECT app, MIN(CAST(s / :width AS INTEGER), :last) AS bs, "
        "MIN(CAST(e / :width AS INTEGER), :last) AS be, COUNT(*), SUM(s), SUM(e) "
        f"FROM ({intervals}) WHERE e > s GROUP BY app, bs, be",
        params,
    ).fetchall()
    busy_seconds: dict[str, float] = {}
    for app, _, _, _, sum_s, sum_e in grouped:
        busy_seconds[app] = busy_seconds.get(app, 0.0) + (sum_e - sum_s)
    keep = set(sorted(busy_seconds, key=lambda a: (-busy_seconds[a], a))[:MAX_APPS])
    folded = [(app if app in keep else OTHER_APP, *rest) for app, *rest in grouped]
    series = _keyed_bucket_averages(folded, buckets, width)
    ordered = {app: series[app] for app in sorted(series, key=lambda a: (a == OTHER_APP, a))}
    finished = [0] * buckets
    for bucket, count in conn.execute(
        f"SELECT MIN(MAX(CAST({rel.format(col='task_time_returned')} / :width AS INTEGER), 0), "
        ":last), COUNT(*) FROM task WHERE run_id = :run AND task_time_returned IS NOT NULL "
        "GROUP BY 1",
        params,
    ):
        finished[int(bucket)] += count
    times = [format_timestamp(start + (end - start) * (b / buckets)) for b in range(buckets)]
    return RunActivity(width, times, ordered, finished, busy_seconds)
