"""Resource usage: per-try sample series, run-wide usage over time, per-app distributions.

Run-wide usage is computed exactly rather than by counting point samples: every sample
describes the period since the previous sample of its try (or since the try started), so
memory and CPU rate are piecewise-constant over those periods, and each time bucket gets the
time-weighted average of their sum. Workers busy is the same sum over the tries' intervals on
their workers' clocks (`taskscope.store.worker_query`). The
"partial seconds counted as whole" and "sawtooth" artefacts of Parsl's plots cannot happen.

On large runs CPU and memory use the samples of a hashed 1-in-k sample of tasks, scaled by k
(`UsageSeries.sample_fraction` says so), and the per-app distributions describe a sample of
tasks: pairing each sample with its predecessor needs a sort of every row, which is what makes
an exact pass over millions of samples slow. Workers busy is exact (to the second at scale).
"""

from __future__ import annotations

import calendar
import sqlite3
from typing import Any

from taskscope.store.readonly import describe_database, written_by_taskscope
from taskscope.store.records import (
    AppDistribution,
    BoxStats,
    Capacity,
    DatabaseInfo,
    ResourceSampleRow,
    UsageSeries,
)
from taskscope.store.sample_stats import box_stats, bucket_sums, sample_intervals
from taskscope.store.sampling import (
    indexed_id_range,
    listed_sample,
    sample_stride,
    sampled_rows,
)
from taskscope.store.timeline_query import kernel_in_flight
from taskscope.store.timestamps import format_timestamp, parse_timestamp, seconds_between_sql
from taskscope.store.totals_query import app_totals
from taskscope.store.worker_query import busy_series, rollup_resolution_s

DEFAULT_BUCKETS = 200
SERIES_LIMIT = 5000
# Above these sizes the resource rows (run usage) and the tasks (per-app distributions) are
# read for a hashed 1-in-k sample of tasks, so the cost stays bounded on any run; the result
# says which fraction it used and the page shows it. Sized so that a cold read stays within
# the dashboard's 300 ms on a loaded machine: each sampled row is an index probe and a row
# lookup (~4 us of CPU cold), and 40,000 rows plus their tries' starts took ~400 ms.
USAGE_SAMPLE_ROWS = 20_000
DIST_SAMPLE_TASKS = 4_000

_CPU = "(COALESCE(psutil_process_time_user, 0) + COALESCE(psutil_process_time_system, 0))"
_R_CPU = _CPU.replace("psutil_", "r.psutil_")  # the same of resource rows named r
# Rows read into Python (sample_stats) are numbers as SQLite's arithmetic would make them
# ("+ 0.0", text -> 0 as in SQL) and have whole-number ids (a database is data from anywhere:
# text in an id column would not even sort beside the numbers).
_WHOLE_IDS = " AND typeof(r.task_id) = 'integer' AND typeof(r.try_id) = 'integer'"
PILOT_TASKS = 1_000  # tasks whose samples are counted to estimate a big run's total
EXACT_COUNT_ROWS = 200_000  # runs of about this many samples or fewer are counted exactly


def _resource_rows(conn: sqlite3.Connection, run_id: str) -> int:
    """How many resource rows the run has: counted, or on a run estimated to hold more than
    EXACT_COUNT_ROWS (where counting means reading millions of index entries), estimated
    from a hashed sample of about PILOT_TASKS tasks scaled up. It only sets the stride of
    the usage sample and says whether there are samples at all."""
    if not has_resource_samples(conn, run_id):
        return 0
    ids = indexed_id_range(conn, "resource", run_id)
    pilot_stride = sample_stride(len(ids), PILOT_TASKS) if ids is not None else 1
    if ids is not None and pilot_stride > 1:
        (pilot,) = conn.execute(
            "SELECT COUNT(*) FROM json_each(?) AS j CROSS JOIN resource r "
            "WHERE r.run_id = ? AND r.task_id = j.value",
            (listed_sample(ids, pilot_stride), run_id),
        ).fetchone()
        if pilot * pilot_stride > EXACT_COUNT_ROWS:
            return int(pilot * pilot_stride)
    return resource_sample_count(conn, run_id)


def resource_series(
    conn: sqlite3.Connection, run_id: str, task_id: int, limit: int = SERIES_LIMIT
) -> list[ResourceSampleRow]:
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
    return [ResourceSampleRow(*row) for row in rows]


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
    conn: sqlite3.Connection, intervals_sql: str, params: dict[str, Any], buckets: int, width: float
) -> tuple[list[float], list[float]]:
    """Time-weighted bucket averages of two weights over intervals (s, e, w1, w2) in seconds
    since the run's start.

    One grouped pass: intervals are grouped by their first and last bucket (bs, be), summing
    w, w*s and w*e. An interval's share of a bucket is linear in those sums, so each group
    expands exactly into its end buckets plus a constant run over the buckets between (a
    difference array). At most buckets^2 groups come back, whatever the number of rows."""
    # LIMIT -1 keeps SQLite from flattening the subqueries, which would copy the (julianday)
    # expressions of s and e into every place they are used and evaluate them many times.
    sql = f"""
    WITH clipped AS (SELECT MAX(s, 0.0) AS s, MIN(e, :horizon) AS e, w1, w2
                     FROM ({intervals_sql} LIMIT -1) LIMIT -1)
    SELECT MIN(CAST(s / :width AS INTEGER), :last) AS bs,
           MIN(CAST(e / :width AS INTEGER), :last) AS be,
           SUM(w1), SUM(w1 * s), SUM(w1 * e), SUM(w2), SUM(w2 * s), SUM(w2 * e)
    FROM clipped WHERE e > s GROUP BY bs, be"""
    args = {**params, "width": width, "last": buckets - 1, "horizon": width * buckets}
    partial = [[0.0] * buckets, [0.0] * buckets]
    diff = [[0.0] * (buckets + 1), [0.0] * (buckets + 1)]
    for bs, be, *sums in conn.execute(sql, args):
        if not (0 <= bs <= be < buckets):
            continue
        for k in (0, 1):
            w, ws, we = (v or 0.0 for v in sums[3 * k : 3 * k + 3])
            if bs == be:
                partial[k][bs] += we - ws
                continue
            partial[k][bs] += w * (bs + 1) * width - ws  # from s to the end of bucket bs
            partial[k][be] += we - w * be * width  # from the start of bucket be to e
            diff[k][bs + 1] += w  # every bucket strictly between is covered in full
            diff[k][be] -= w
    result = ([0.0] * buckets, [0.0] * buckets)
    for k in (0, 1):
        running = 0.0
        for b in range(buckets):
            running += diff[k][b]
            result[k][b] = (partial[k][b] + running * width) / width
    return result


def has_resource_samples(conn: sqlite3.Connection, run_id: str) -> bool:
    """Whether the run has any resource row: one index probe, where a count of a million-task
    run's millions of samples takes most of a second."""
    if not describe_database(conn).has("resource"):
        return False
    return (
        conn.execute("SELECT 1 FROM resource WHERE run_id = ? LIMIT 1", (run_id,)).fetchone()
        is not None
    )


def resource_sample_count(conn: sqlite3.Connection, run_id: str) -> int:
    """How many resource rows the run has (0 when the table does not exist)."""
    if not describe_database(conn).has("resource"):
        return 0
    count: int = conn.execute(
        "SELECT COUNT(*) FROM resource WHERE run_id = ?", (run_id,)
    ).fetchone()[0]
    return count


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


USAGE_PARTS = ("workers", "samples")
INTERNAL_EXECUTORS = "('_taskscope_internal', '_parsl_internal')"


def run_usage(
    conn: sqlite3.Connection,
    run_id: str,
    buckets: int = DEFAULT_BUCKETS,
    parts: tuple[str, ...] = USAGE_PARTS,
    fit_rollups: bool = False,
) -> UsageSeries | None:
    """CPU cores and memory in use (summed over running tries) and workers busy, over time.

    `parts` limits the work to workers busy ("workers", from the try table) and/or CPU and
    memory ("samples", from the resource table); the series not asked for are zeros.
    `fit_rollups`: fewer buckets where `buckets` would make them finer than the writer's
    rollups resolve (a second; a minute on long runs), so that workers busy and the
    kernel's in-flight tries come from the rollups (for the dashboard's page; the API keeps
    the count it was asked for, at the cost of reading a sample of tries instead)."""
    info = describe_database(conn)
    if not (info.has_runs and info.has("try")):
        return None
    began, ended = _span(conn, run_id)
    start, end = parse_timestamp(began), parse_timestamp(ended)
    if start is None or end is None:
        return None
    buckets = max(1, min(int(buckets), 2000))
    span = max((end - start).total_seconds(), 1e-3)
    if fit_rollups:
        buckets = max(1, min(buckets, int(span // rollup_resolution_s(span))))
    width = span / buckets
    params = {"run": run_id, "began": began, "ended": ended}
    rel = "((julianday({col}) - julianday(:began)) * 86400.0)"
    cpu = memory = workers = [0.0] * buckets
    samples = 0
    in_flight: list[float] = []
    flight_stride = 1
    if "workers" in parts:
        # Busy from the workers' own clocks (running -> running_ended): never above capacity.
        epoch = calendar.timegm(start.timetuple()) + start.microsecond / 1e6
        workers = busy_series(conn, run_id, epoch, epoch + span, buckets)
        # The kernel's view, launched -> returned: from the writer's state flow, or from the
        # try table (a hashed sample of tries at scale).
        kept = kernel_in_flight(conn, run_id, epoch, epoch + span, buckets)
        flight_stride = (
            1
            if kept is not None
            else sample_stride(_try_rows_estimate(conn, run_id), USAGE_SAMPLE_ROWS)
        )
        flight_sql = (
            f"SELECT {rel.format(col='task_try_time_launched')} AS s, "
            f"{rel.format(col='COALESCE(task_try_time_returned, :ended)')} AS e, 1.0 AS w1, "
            f"0.0 AS w2 FROM {sampled_rows(conn, 'try', 'y', run_id, flight_stride, params)} "
            "AND task_try_time_launched IS NOT NULL "
            # Join apps wait on the kernel's internal thread pool, not on a worker.
            f"AND task_executor NOT IN {INTERNAL_EXECUTORS}"
        )
        if kept is not None:
            in_flight = kept
        else:
            in_flight, _ = _bucket_sums(conn, flight_sql, params, buckets, width)
            in_flight = [v * flight_stride for v in in_flight]
    samples = _resource_rows(conn, run_id) if "samples" in parts else 0
    stride = sample_stride(samples, USAGE_SAMPLE_ROWS)
    if samples and "samples" in parts:
        # Seconds since the run began, computed once per row by SQLite; the pairing of each
        # sample with the previous one of its try and the buckets in Python (sample_stats).
        # julianday(:began) once, not once per row: the same numbers, a third less work.
        (params["began_jd"],) = conn.execute("SELECT julianday(?)", (began,)).fetchone()
        since_began = "((julianday({col}) - :began_jd) * 86400.0)"
        rows = conn.execute(
            f"SELECT r.task_id, r.try_id, {since_began.format(col='r.timestamp')}, "
            f"COALESCE(r.psutil_process_memory_resident, 0) + 0.0, {_R_CPU} "
            f"FROM {sampled_rows(conn, 'resource', 'r', run_id, stride, params)}{_WHOLE_IDS}",
            params,
        ).fetchall()
        starts = _try_starts(conn, run_id, {(row[0], row[1]) for row in rows}, since_began, params)
        # taskscope reports CPU time since the try started; Parsl reports the worker
        # process's total, so only differences between a try's samples count there.
        intervals = sample_intervals(rows, starts, written_by_taskscope(conn, info, run_id))
        memory, cpu = bucket_sums(intervals, buckets, width)
        memory = [m * stride for m in memory]  # the sample's share scaled to the whole run
        cpu = [c * stride for c in cpu]
    times = [format_timestamp(start + (end - start) * (b / buckets)) for b in range(buckets)]
    return UsageSeries(
        bucket_seconds=width,
        times=times,
        cpu_cores=cpu,
        memory_bytes=memory,
        workers_busy=workers,
        capacity=capacity(conn, run_id),
        sample_count=samples,
        sample_fraction=1.0 / stride if "samples" in parts else 1.0,
        in_flight=in_flight,
        in_flight_fraction=1.0 / flight_stride,
    )


def _try_starts(
    conn: sqlite3.Connection,
    run_id: str,
    tries: set[tuple[int, int]],
    rel: str,
    rel_params: dict[str, Any],
) -> dict[tuple[int, int], float | None]:
    """(task_id, try_id) -> when the try started running, in seconds since the start, for
    `tries`: the tries of their tasks, read by probes of taskscope's (run_id, task_id) index
    where there is one, else one probe of the try primary key (try_id, task_id, run_id)
    per try (Parsl's databases). `rel`: the SQL of seconds since the start, with the
    parameters it uses in `rel_params`."""
    params = {**rel_params, "run": run_id}
    start = rel.format(col="y.task_try_time_running")
    if indexed_id_range(conn, "try", run_id) is not None:
        params["ids"] = "[" + ",".join(map(str, sorted({t for t, _ in tries}))) + "]"
        sql = (
            f"SELECT y.task_id, y.try_id, {start} FROM json_each(:ids) AS j CROSS JOIN try y "
            "WHERE y.run_id = :run AND y.task_id = j.value"
        )
    else:
        params["pairs"] = "[" + ",".join(f"[{a},{b}]" for a, b in sorted(tries)) + "]"
        sql = (
            f"SELECT y.task_id, y.try_id, {start} FROM json_each(:pairs) AS j CROSS JOIN try y "
            "WHERE y.try_id = json_extract(j.value, '$[1]') "
            "AND y.task_id = json_extract(j.value, '$[0]') AND y.run_id = :run"
        )
    return {(task_id, try_id): s for task_id, try_id, s in conn.execute(sql, params)}


def _try_rows_estimate(conn: sqlite3.Connection, run_id: str) -> int:
    """About how many tries the run has, without counting them all: the run's task count
    (the writer's per-app totals, or an index count) is close, since most tasks have one
    try."""
    return sum(_app_sizes(conn, run_id).values())


SMALL_APP_TASKS = 2_000  # apps this small are always measured exactly


def _distribution_values(
    conn: sqlite3.Connection,
    info: DatabaseInfo,
    try_rows: str,
    resource_rows: str | None,
    per_try_cpu: bool,
    params: dict[str, Any],
) -> dict[tuple[str, str], list[float | None]]:
    """(kind, app) -> values: each kept task's run time (its tries' running -> returned,
    summed), peak resident memory (over its tries) and CPU time (summed over its tries).
    `try_rows` and `resource_rows` are FROM ... WHERE SQL choosing the kept tasks' rows of
    try (as y) and resource (as r); `per_try_cpu` says the run's CPU figures start at zero
    with each try (taskscope) rather than at the worker's total (Parsl). Tasks without a
    task row are left out."""
    run_s = seconds_between_sql("y.task_try_time_running", "y.task_try_time_returned")
    durations: dict[int, float | None] = {}
    for task_id, seconds in conn.execute(
        f"SELECT y.task_id, {run_s} FROM {try_rows}{_WHOLE_IDS.replace('r.', 'y.')}", params
    ):
        if seconds is not None:
            durations[task_id] = (durations.get(task_id) or 0.0) + seconds
        else:
            durations.setdefault(task_id, None)
    per_try: dict[tuple[int, int], list[Any]] = {}  # [peak, highest cpu, lowest cpu]
    if resource_rows is not None and info.has("resource"):
        for task_id, try_id, rss, cpu in conn.execute(
            f"SELECT r.task_id, r.try_id, r.psutil_process_memory_resident + 0.0, {_R_CPU} "
            f"FROM {resource_rows}{_WHOLE_IDS}",
            params,
        ):
            kept = per_try.get((task_id, try_id))
            if kept is None:
                per_try[(task_id, try_id)] = [rss, cpu, cpu]
                continue
            if rss is not None and (kept[0] is None or rss > kept[0]):
                kept[0] = rss
            kept[1], kept[2] = max(kept[1], cpu), min(kept[2], cpu)
    peaks: dict[int, float | None] = {}
    cpus: dict[int, float] = {}
    for (task_id, _), (peak, high, low) in per_try.items():
        if peak is not None and (peaks.get(task_id) is None or peak > peaks[task_id]):
            peaks[task_id] = peak
        else:
            peaks.setdefault(task_id, None)
        cpus[task_id] = cpus.get(task_id, 0.0) + high - (0.0 if per_try_cpu else low)
    apps = _apps_of(conn, params["run"], set(durations) | set(peaks))
    values: dict[tuple[str, str], list[float | None]] = {}
    for kind, by_task in (("duration", durations), ("peak", peaks), ("cpu", cpus)):
        for task_id, value in by_task.items():
            app = apps.get(task_id)
            if app is not None:
                values.setdefault((kind, app), []).append(value)
    return values


def _apps_of(conn: sqlite3.Connection, run_id: str, task_ids: set[int]) -> dict[int, str]:
    """task -> its app, for `task_ids` (probes of the task primary key)."""
    ids = "[" + ",".join(map(str, task_ids)) + "]"
    return dict(
        conn.execute(
            "SELECT t.task_id, t.task_func_name FROM json_each(:ids) AS j CROSS JOIN task t "
            "ON t.task_id = j.value AND t.run_id = :run",
            {"ids": ids, "run": run_id},
        ).fetchall()
    )


def _box_stats(
    values: dict[tuple[str, str], list[float | None]],
) -> dict[tuple[str, str], BoxStats]:
    boxes = {key: box_stats(v) for key, v in values.items()}
    return {key: box for key, box in boxes.items() if box is not None}


def _app_sizes(conn: sqlite3.Connection, run_id: str) -> dict[str, int]:
    """app -> tasks: from the writer's per-run totals when kept, else a pass over the index."""
    totals = app_totals(conn, run_id)
    if totals is not None:
        return {app: by_state.get("pending", 0) for app, by_state in totals.items()}
    return dict(
        conn.execute(
            "SELECT task_func_name, COUNT(*) FROM task WHERE run_id = ? GROUP BY 1", (run_id,)
        ).fetchall()
    )


def app_distributions(conn: sqlite3.Connection, run_id: str) -> list[AppDistribution]:
    """Per app: run time of its tasks, their peak resident memory and their CPU time.

    On a large run the statistics come from a hashed sample of about DIST_SAMPLE_TASKS
    tasks (the same tasks for all three), so the cost does not grow with the run; apps of at
    most SMALL_APP_TASKS tasks are measured exactly all the same."""
    info = describe_database(conn)
    if not (info.has("task") and info.has("try")):
        return []
    sizes = _app_sizes(conn, run_id)
    stride = sample_stride(sum(sizes.values()), DIST_SAMPLE_TASKS)
    params: dict[str, Any] = {"run": run_id}
    per_try = written_by_taskscope(conn, info, run_id)
    sampled = _distribution_values(
        conn,
        info,
        sampled_rows(conn, "try", "y", run_id, stride, params),
        sampled_rows(conn, "resource", "r", run_id, stride, params)
        if info.has("resource")
        else None,
        per_try,
        params,
    )
    stats = _box_stats(sampled)
    small = sorted(name for name, n in sizes.items() if n <= SMALL_APP_TASKS)
    if stride > 1 and small:
        marks = ",".join(f":a{i}" for i in range(len(small)))
        of_small_apps = (
            " WHERE {a}.run_id = :run AND {a}.task_id IN (SELECT task_id FROM task "
            f"WHERE run_id = :run AND task_func_name IN ({marks}))"
        )
        exact = _box_stats(
            _distribution_values(
                conn,
                info,
                "try y" + of_small_apps.format(a="y"),
                "resource r" + of_small_apps.format(a="r"),
                per_try,
                {**params, **{f"a{i}": name for i, name in enumerate(small)}},
            )
        )
        stats = {key: box for key, box in stats.items() if key[1] not in small} | exact
    return [
        AppDistribution(
            app,
            stats.get(("duration", app)),
            stats.get(("peak", app)),
            stats.get(("cpu", app)),
            1.0 if stride == 1 or app in small else 1.0 / stride,
        )
        for app in sorted({app for _, app in stats})
    ]
