"""Read-side queries over a monitoring database (taskscope's or Parsl's).

Every function takes an open (read-only) ``sqlite3.Connection`` and returns dataclasses from
`taskscope.store.records`. Every query is bounded: aggregation, ``LIMIT`` and ``OFFSET`` happen
in SQL, so a run of a million tasks costs no more memory than a page of it.

A task's *state* is its latest status row. Timestamps are returned as stored; see
`DatabaseInfo.timestamp_convention` for their zone.
"""

from __future__ import annotations

import math
import sqlite3
from typing import Any

from taskscope.store import totals_query
from taskscope.store.duration_pages import duration_page, durations_kept
from taskscope.store.graph_query import app_graph, task_graph, task_neighbourhood
from taskscope.store.id_lists import id_list
from taskscope.store.id_pages import walked_page
from taskscope.store.readonly import describe_database, open_readonly
from taskscope.store.records import (
    AppStats,
    DatabaseInfo,
    DurationStats,
    Page,
    RunRow,
    RunSummary,
    StatusEvent,
    TaskDetail,
    TaskRow,
    TimelineSegment,
    TimelineTask,
    TryFailureRow,
    TryRecord,
)
from taskscope.store.resource_query import (
    app_distributions,
    capacity,
    resource_sample_count,
    resource_series,
    run_usage,
)
from taskscope.store.runstatus import parsl_run_status, taskscope_run_status
from taskscope.store.sampling import in_sample, sample_stride
from taskscope.store.states import (
    FAILED_FINAL_STATES,
    FINAL_STATES,
    SUCCEEDED_FINAL_STATES,
    is_final,
)
from taskscope.store.task_state import (
    STATE_TABLE,
    TASK_DURATION_SQL,
    StateSource,
    app_state_counts,
    state_counts_sql,
    state_source,
)
from taskscope.store.timestamps import age_seconds, seconds_between_sql
from taskscope.store.worker_query import app_run_times, run_time_sql, task_worker_tries
from taskscope.store.worker_rollup import INTERNAL_EXECUTOR_LABELS

__all__ = [
    "app_distributions",
    "app_graph",
    "app_summary",
    "capacity",
    "describe_database",
    "duration_stats",
    "get_run",
    "list_runs",
    "list_tasks",
    "open_readonly",
    "resource_sample_count",
    "resource_series",
    "run_summary",
    "run_usage",
    "state_counts",
    "state_history",
    "task_detail",
    "task_graph",
    "task_neighbourhood",
    "timeline",
]

MAX_PAGE = 1000
DURATION_SQL = TASK_DURATION_SQL
RUN_SORTS = {
    "time_began": "w.time_began",
    "workflow_name": "w.workflow_name",
    "run_id": "w.run_id",
    "duration": seconds_between_sql("w.time_began", "w.time_completed"),
    "status": "run_status",
    "user": "w.user",
}
TASK_SORTS = {
    "task_id": "t.task_id",
    "duration": DURATION_SQL,
    "time_invoked": "t.task_time_invoked",
    "app": "t.task_func_name",
}


def _named_rows(conn: sqlite3.Connection, sql: str, params: dict[str, Any]) -> list[sqlite3.Row]:
    cursor = conn.cursor()
    cursor.row_factory = sqlite3.Row
    return cursor.execute(sql, params).fetchall()


def _bounded(limit: int, offset: int) -> tuple[int, int]:
    return max(1, min(int(limit), MAX_PAGE)), max(0, int(offset))


def run_task_counts(conn: sqlite3.Connection, run_ids: list[str]) -> dict[str, int]:
    """Number of tasks of each of `run_ids`, in one grouped pass (a Parsl database has no
    index on task.run_id, so a count per run would read the task index once per run)."""
    if not run_ids or not describe_database(conn).has("task"):
        return {}
    counts = totals_query.run_task_totals(conn, run_ids)  # the writer's totals, when kept
    rest = [r for r in run_ids if r not in counts]
    if not rest:
        return counts
    marks = ",".join("?" * len(rest))
    counts.update(
        conn.execute(
            f"SELECT run_id, COUNT(*) FROM task WHERE run_id IN ({marks}) GROUP BY run_id",
            rest,
        ).fetchall()
    )
    return counts


def state_counts(
    conn: sqlite3.Connection, run_id: str, task_count: int | None = None
) -> dict[str, int]:
    """Number of tasks in each final state; tasks without any status row count as pending.
    `task_count`: the run's number of tasks when the caller knows it already."""
    info = describe_database(conn)
    if not (info.has("task") and info.has("status")):
        return {}
    kept = totals_query.run_state_counts(conn, run_id)
    if kept is not None:
        return kept
    if task_count is None:
        task_count = run_task_counts(conn, [run_id]).get(run_id, 0)
    source = state_source(conn, info, run_id, run_tasks=task_count)
    counts = dict(conn.execute(state_counts_sql(source), {"run": run_id}).fetchall())
    stateless = task_count - sum(counts.values())
    if stateless > 0:
        counts["pending"] = counts.get("pending", 0) + stateless
    return counts


def _last_activity(conn: sqlite3.Connection, run_id: str) -> str | None:
    last: str | None = conn.execute(
        "SELECT MAX(timestamp) FROM status WHERE run_id = ?", (run_id,)
    ).fetchone()[0]
    return last


def _run_from_row(
    conn: sqlite3.Connection,
    info: DatabaseInfo,
    row: sqlite3.Row,
    with_counts: bool,
    task_count: int,
) -> RunRow:
    counts = state_counts(conn, row["run_id"], task_count) if with_counts else {}
    # Runs with a taskscope_run row are taskscope's (UTC); others are Parsl's (local time).
    convention = "utc" if row["ts_status"] is not None else "local"
    if row["ts_status"] is not None:
        status = taskscope_run_status(
            row["ts_status"], row["last_heartbeat"], row["heartbeat_interval"], convention
        )
    else:
        failed = sum(counts.get(state, 0) for state in FAILED_FINAL_STATES)
        if not with_counts:
            failed = row["tasks_failed_count"] or 0
        last = None if row["time_completed"] else _last_activity(conn, row["run_id"])
        status = parsl_run_status(row["time_completed"], failed, last, convention)
    duration = row["duration_s"]
    if duration is None and status == "running":
        duration = age_seconds(row["time_began"], convention)
    return RunRow(
        run_id=row["run_id"],
        workflow_name=row["workflow_name"],
        workflow_version=row["workflow_version"],
        time_began=row["time_began"],
        time_completed=row["time_completed"],
        host=row["host"],
        user=row["user"],
        rundir=row["rundir"],
        status=status,
        duration_s=duration,
        task_count=task_count,
        state_counts=counts,
        last_heartbeat=row["last_heartbeat"],
        timestamp_convention=convention,
        tasks_failed=row["tasks_failed_count"],
    )


def _runs_select(info: DatabaseInfo) -> str:
    if info.has("taskscope_run"):
        run_cols = "r.status AS ts_status, r.last_heartbeat, r.heartbeat_interval"
        join = "LEFT JOIN taskscope_run r ON r.run_id = w.run_id"
    else:
        run_cols = "NULL AS ts_status, NULL AS last_heartbeat, NULL AS heartbeat_interval"
        join = ""
    return (
        "SELECT w.run_id, w.workflow_name, w.workflow_version, w.time_began, w.time_completed, "
        "w.host, w.user, w.rundir, w.tasks_failed_count, w.tasks_completed_count, "
        f"{seconds_between_sql('w.time_began', 'w.time_completed')} AS duration_s, "
        f"{run_cols}, "
        "COALESCE(" + ("r.status" if join else "NULL") + ", CASE WHEN w.time_completed IS NULL "
        "THEN 'running' WHEN w.tasks_failed_count > 0 THEN 'failed' ELSE 'completed' END) "
        f"AS run_status FROM workflow w {join}"
    )


def list_runs(
    conn: sqlite3.Connection,
    *,
    sort: str = "time_began",
    descending: bool = True,
    limit: int = 50,
    offset: int = 0,
    workflow_name: str | None = None,
    with_counts: bool = True,
) -> Page[RunRow]:
    """Runs in the database, newest first by default; `workflow_name` keeps one workflow's runs."""
    limit, offset = _bounded(limit, offset)
    info = describe_database(conn)
    if not info.has_runs:
        return Page([], 0, limit, offset)
    where, params = "", {}
    if workflow_name is not None:
        where, params = " WHERE w.workflow_name IS :name", {"name": workflow_name}
    order = RUN_SORTS.get(sort, RUN_SORTS["time_began"])
    direction = "DESC" if descending else "ASC"
    total = conn.execute(f"SELECT COUNT(*) FROM workflow w{where}", params).fetchone()[0]
    rows = _named_rows(
        conn,
        f"{_runs_select(info)}{where} ORDER BY {order} {direction}, w.run_id "
        "LIMIT :limit OFFSET :offset",
        {**params, "limit": limit, "offset": offset},
    )
    tasks = run_task_counts(conn, [row["run_id"] for row in rows])
    runs = [
        _run_from_row(conn, info, row, with_counts, tasks.get(row["run_id"], 0)) for row in rows
    ]
    return Page(runs, total, limit, offset)


def get_run(conn: sqlite3.Connection, run_id: str, with_counts: bool = True) -> RunRow | None:
    info = describe_database(conn)
    if not info.has_runs:
        return None
    rows = _named_rows(conn, f"{_runs_select(info)} WHERE w.run_id = :run", {"run": run_id})
    if not rows:
        return None
    tasks = run_task_counts(conn, [run_id]).get(run_id, 0)
    return _run_from_row(conn, info, rows[0], with_counts, tasks)


def workflow_names(conn: sqlite3.Connection, limit: int = 200) -> list[tuple[str | None, int]]:
    """Distinct workflow names with their number of runs, for grouping runs."""
    if not describe_database(conn).has_runs:
        return []
    return list(
        conn.execute(
            "SELECT workflow_name, COUNT(*) FROM workflow GROUP BY workflow_name "
            "ORDER BY workflow_name LIMIT ?",
            (limit,),
        )
    )


MEDIAN_SAMPLE_TASKS = 20_000


def duration_stats(conn: sqlite3.Connection, run_id: str) -> DurationStats:
    """Count, minimum, mean and maximum of task durations (exact), and their median: exact up
    to MEDIAN_SAMPLE_TASKS finished tasks, above that the median of a hashed sample of about
    that many (a rank error well under 1%), since an exact median needs a sort of them all."""
    if not describe_database(conn).has("task"):
        return DurationStats(0, None, None, None, None)
    tasks = totals_query.run_task_totals(conn, [run_id]).get(run_id, 0)
    if tasks > DURATION_SAMPLE_ABOVE:
        return _sampled_duration_stats(conn, run_id, tasks)
    durations = (
        f"SELECT {DURATION_SQL} AS s FROM task t WHERE t.run_id = :run "
        "AND t.task_time_invoked IS NOT NULL AND t.task_time_returned IS NOT NULL{sample}"
    )
    count, low, mean, high = conn.execute(
        # LIMIT -1: not flattened, so each duration is computed once, not once per aggregate
        f"SELECT COUNT(s), MIN(s), AVG(s), MAX(s) FROM ({durations.format(sample='')} LIMIT -1)",
        {"run": run_id},
    ).fetchone()
    median, fraction = None, 1.0
    if count:
        stride = sample_stride(count, MEDIAN_SAMPLE_TASKS)
        sampled = durations.format(sample=f" AND {in_sample('t.task_id', stride)}")
        kept = conn.execute(f"SELECT COUNT(*) FROM ({sampled})", {"run": run_id}).fetchone()[0]
        if kept:
            median = conn.execute(
                f"SELECT s FROM ({sampled}) ORDER BY s LIMIT 1 OFFSET :mid",
                {"run": run_id, "mid": (kept - 1) // 2},
            ).fetchone()[0]
            fraction = kept / count
    return DurationStats(count, low, median, mean, high, median_fraction=fraction)


DURATION_SAMPLE_ABOVE = 100_000


def _sampled_duration_stats(conn: sqlite3.Connection, run_id: str, tasks: int) -> DurationStats:
    """Duration statistics of a taskscope run too large to read whole within a page's time:
    of every k-th task (ids are 0..n-1; k coprime with 10, since workflows often repeat apps
    every ten tasks), found by primary-key seeks rather than a pass over the run."""
    stride = max(1, -(-tasks // MEDIAN_SAMPLE_TASKS))
    while math.gcd(stride, 10) != 1:
        stride += 1
    ids = "WITH RECURSIVE ids(i) AS (SELECT 0 UNION ALL SELECT i + :k FROM ids WHERE i + :k < :n) "
    # The same tasks' durations: as the writer stored them (its state table's rows are a
    # tenth the size of the task table's, so each probe is about a third of the cost), else
    # computed from the task rows.
    sql = (
        f"{ids}SELECT z.duration FROM ids CROSS JOIN {STATE_TABLE} z ON z.task_id = ids.i "
        "AND z.run_id = :run WHERE z.duration IS NOT NULL"
        if durations_kept(conn, run_id)
        else f"{ids}SELECT {DURATION_SQL} FROM ids CROSS JOIN task t ON t.task_id = ids.i "
        "AND t.run_id = :run WHERE t.task_time_returned IS NOT NULL"
    )
    rows = [
        r[0]
        for r in conn.execute(sql, {"k": stride, "n": tasks, "run": run_id})
        if r[0] is not None
    ]
    if not rows:
        return DurationStats(0, None, None, None, None)
    rows.sort()
    finished = sum(
        n
        for state, n in (totals_query.run_state_counts(conn, run_id) or {}).items()
        if is_final(state)
    )
    fraction = min(1.0, len(rows) / max(1, finished))
    return DurationStats(
        finished,
        rows[0],
        rows[(len(rows) - 1) // 2],
        sum(rows) / len(rows),
        rows[-1],
        median_fraction=fraction,
        all_sampled=True,
    )


def run_summary(
    conn: sqlite3.Connection, run_id: str, with_durations: bool = True, with_counts: bool = True
) -> RunSummary | None:
    """Details and task statistics of one run; None if the run is not in the database.
    `with_durations=False` skips the duration statistics (a pass over every task) for a
    caller that fetches them separately with `duration_stats`; `with_counts=False` leaves
    `run.state_counts` empty for one that calls `state_counts` itself."""
    info = describe_database(conn)
    run = get_run(conn, run_id, with_counts=with_counts)
    if run is None:
        return None
    try_count, retry_count = (0, 0)
    executors: list[str] = []
    extra = None
    if info.has("taskscope_run"):
        extra = conn.execute(
            "SELECT executors, python_version, taskscope_version, messages_dropped, pid "
            "FROM taskscope_run WHERE run_id = ?",
            (run_id,),
        ).fetchone()
    kept = totals_query.try_totals(conn, run_id)  # the writer's totals, when kept
    if kept is not None:
        try_count, retry_count = kept
    elif info.has("try"):
        try_count, tried_tasks = conn.execute(
            "SELECT COUNT(*), COUNT(DISTINCT task_id) FROM try WHERE run_id = ?", (run_id,)
        ).fetchone()
        retry_count = max(0, try_count - tried_tasks)
    if extra is not None and extra[0]:  # recorded at the start: no pass over the tries
        executors = [e for e in _split_executors(extra[0]) if e]
    elif info.has("try"):
        executors = [
            row[0]
            for row in conn.execute(
                "SELECT DISTINCT task_executor FROM try WHERE run_id = ? LIMIT 50", (run_id,)
            )
        ]
    # The kernel's own pool for join apps is no executor the user configured.
    executors = [e for e in executors if e not in INTERNAL_EXECUTOR_LABELS]
    return RunSummary(
        run=run,
        executors=executors,
        try_count=try_count,
        retry_count=retry_count,
        duration=duration_stats(conn, run_id) if with_durations else None,
        last_activity=_last_activity(conn, run_id) if info.has("status") else None,
        timestamp_convention=run.timestamp_convention,
        python_version=extra[1] if extra else None,
        taskscope_version=extra[2] if extra else None,
        messages_dropped=(extra[3] or 0) if extra else 0,
        pid=extra[4] if extra else None,
    )


def _split_executors(text: str) -> list[str]:
    return [part.strip().strip("\"'") for part in text.strip("[]").split(",")]


APP_SAMPLE_TASKS = 15_000
# Apps this small are always measured exactly: a sample of them would be a handful of tasks.
SMALL_APP_TASKS = 2_000


def _app_means(
    conn: sqlite3.Connection, run_id: str, stride: int, apps: list[str] | None
) -> dict[str, tuple[int, float | None, int, float | None, int]]:
    """app -> (tasks measured, mean duration, tries, summed run time, tasks that ran), over
    the 1-in-`stride` sample of tasks, for `apps` (None: every app of the run)."""
    params: dict[str, Any] = {"run": run_id}
    only_apps = ""
    if apps is not None:
        params.update({f"a{i}": name for i, name in enumerate(apps)})
        only_apps = (
            " AND t.task_func_name IN (" + ",".join(f":a{i}" for i in range(len(apps))) + ")"
        )
    means = {
        name: (n, mean_d)
        for name, n, mean_d in conn.execute(
            f"SELECT t.task_func_name, COUNT(*), AVG({DURATION_SQL}) FROM task t "
            f"WHERE t.run_id = :run{only_apps} AND {in_sample('t.task_id', stride)} "
            "GROUP BY t.task_func_name",
            params,
        )
    }
    # Run time on the worker's clock (running -> running_ended), not the kernel's returned.
    exec_s = run_time_sql("y")
    # The whole run: walk the tries (the sample test runs on index entries), then their
    # tasks. Some apps: walk those apps' tasks, then their tries.
    tries_join = "task t JOIN try y" if apps is not None else "try y CROSS JOIN task t"
    result = {}
    for name, n, total_exec, ran in conn.execute(
        f"SELECT task_func_name, COUNT(*), SUM(x), COUNT(x) FROM (SELECT t.task_func_name, "
        f"{exec_s} AS x FROM {tries_join} ON t.task_id = y.task_id AND t.run_id = y.run_id "
        f"WHERE y.run_id = :run{only_apps} AND {in_sample('y.task_id', stride)} LIMIT -1) "
        "GROUP BY task_func_name",
        params,
    ):
        result[name] = (*means.get(name, (0, None)), n, total_exec, ran)
    for name, (n, mean_d) in means.items():
        result.setdefault(name, (n, mean_d, 0, None, 0))
    return result


def app_summary(conn: sqlite3.Connection, run_id: str, app: str | None = None) -> list[AppStats]:
    """One row per app (or only `app`): invocations, completed and failed counts (exact), tries
    and mean durations: exact up to APP_SAMPLE_TASKS tasks in the run and for apps of at most
    SMALL_APP_TASKS tasks, otherwise from a hashed sample of about APP_SAMPLE_TASKS tasks,
    tries scaled up (`AppStats.sample_fraction` says which)."""
    info = describe_database(conn)
    if not (info.has("task") and info.has("status") and info.has("try")):
        return []
    counts = totals_query.app_state_counts(conn, run_id, app)
    if counts is not None and sum(map(sum, (c.values() for c in counts.values()))) > (
        APP_SAMPLE_TASKS
    ):
        return _app_summary_from_totals(conn, run_id, app)
    if counts is None:
        counts = app_state_counts(conn, state_source(conn, info, run_id), app)
    sizes = {name: sum(by_state.values()) for name, by_state in counts.items()}
    stride = sample_stride(sum(sizes.values()), APP_SAMPLE_TASKS)
    means = _app_means(conn, run_id, stride, [app] if app is not None else None)
    small = [name for name, n in sizes.items() if n <= SMALL_APP_TASKS]
    if stride > 1 and small:
        means.update(_app_means(conn, run_id, 1, small))
    # exact, from the writer's totals (or its per-second rollup)
    worker_means = totals_query.app_run_totals(conn, run_id) or app_run_times(conn, run_id)
    stats = []
    for name in sorted(counts):
        by_state, n = counts[name], sizes[name]
        completed = sum(by_state.get(state, 0) for state in SUCCEEDED_FINAL_STATES)
        failed = sum(by_state.get(state, 0) for state in FAILED_FINAL_STATES)
        measured, mean_d, try_count, total_exec, ran = means.get(name, (0, None, 0, None, 0))
        exact = stride == 1 or name in small
        scale = n / measured if not exact and measured else 1.0
        stats.append(
            AppStats(
                app=name,
                tasks=n,
                completed=completed,
                failed=failed,
                unfinished=n - completed - failed,
                tries=round(try_count * scale),
                mean_duration_s=mean_d,
                # mean run time of a try on its worker's clock
                mean_exec_s=worker_means[name][1]
                if name in worker_means
                else ((total_exec / ran) if total_exec is not None and ran else None),
                sample_fraction=1.0 if exact or not n else measured / n,
            )
        )
    return stats


def _app_summary_from_totals(
    conn: sqlite3.Connection, run_id: str, app: str | None
) -> list[AppStats]:
    """A large taskscope run's app table from the writer's totals: counts, tries and run
    time exact; mean duration (invoked -> returned) of every k-th task per app, found by
    primary-key seeks (task ids are 0..n-1), not a pass over the run."""
    totals = totals_query.app_totals(conn, run_id) or {}
    runs = totals_query.app_run_totals(conn, run_id)
    tasks = sum(t.get("pending", 0) for t in totals.values())
    stride = max(1, -(-tasks // APP_SAMPLE_TASKS))
    while math.gcd(stride, 10) != 1:  # workflows often repeat their apps every ten tasks
        stride += 1
    sampled = {
        name: (n, mean)
        for name, n, mean in conn.execute(
            "WITH RECURSIVE ids(i) AS (SELECT 0 UNION ALL SELECT i + :k FROM ids WHERE i + :k < "
            ":n) "
            f"SELECT t.task_func_name, COUNT(*), AVG({DURATION_SQL}) FROM ids CROSS JOIN task t "
            "ON t.task_id = ids.i AND t.run_id = :run GROUP BY t.task_func_name",
            {"k": stride, "n": tasks, "run": run_id},
        )
    }
    # An app too small for the stride to find is measured exactly (ix_task_run_func seek).
    for name, app_totals in totals.items():
        n = app_totals.get("pending", 0)
        if n <= SMALL_APP_TASKS and sampled.get(name, (0, None))[0] < n:
            sampled[name] = conn.execute(
                f"SELECT COUNT(*), AVG({DURATION_SQL}) FROM task t "
                "WHERE t.run_id = ? AND t.task_func_name = ?",
                (run_id, name),
            ).fetchone()
    stats = []
    for name in sorted(totals):
        if app is not None and name != app:
            continue
        by_state = totals_query.current_states(totals[name])
        n = totals[name].get("pending", 0)
        completed = sum(by_state.get(state, 0) for state in SUCCEEDED_FINAL_STATES)
        failed = sum(by_state.get(state, 0) for state in FAILED_FINAL_STATES)
        measured, mean_d = sampled.get(name, (0, None))
        exact_small = n <= SMALL_APP_TASKS and measured == n
        stats.append(
            AppStats(
                app=name,
                tasks=n,
                completed=completed,
                failed=failed,
                unfinished=n - completed - failed,
                tries=totals[name].get("launched", 0) + totals[name].get("relaunched", 0),
                mean_duration_s=mean_d,
                mean_exec_s=runs[name][1] if name in runs else None,
                sample_fraction=1.0 if exact_small or not n else min(1.0, measured / n),
            )
        )
    return stats


def _state_filter(source: StateSource, state: str, one_app: bool) -> tuple[str, str]:
    """(from clause, condition) keeping the run's tasks whose current state is `state`; a
    task with no status row yet counts as pending.

    From the state table: a join through its (run_id, state) index. From the status history:
    for one app, a per-task lookup (cost grows with the app); for the whole run, one pass
    over the history joined to the tasks by primary key."""
    if source.from_table:
        join = "LEFT JOIN" if state == "pending" else "JOIN"
        condition = (
            "(z.state IS NULL OR z.state = :state)" if state == "pending" else ("z.state = :state")
        )
        return (
            f"task t {join} {STATE_TABLE} z ON z.run_id = t.run_id AND z.task_id = t.task_id"
        ), condition
    if one_app or state == "pending":
        return "task t", f"COALESCE({source.of_task()}, 'pending') = :state"
    return (
        f"({source.per_task()} LIMIT -1) z CROSS JOIN task t ON t.task_id = z.task_id "
        "AND t.run_id = :run"
    ), "z.state = :state"


def _kept_counts(
    conn: sqlite3.Connection,
    run_id: str,
    app: str | None,
    state: str | None,
    source: StateSource | None,
) -> tuple[int, int, int | None, int | None] | None:
    """(tasks matching, run's tasks, app's tasks, run's tasks in `state`) from the writer's
    per-app totals, for a task list a walk in id order can page (`id_pages`); None when
    the writer kept no totals, or `state` is one they cannot count exactly (the unfinished
    states; 'pending' also holds tasks without a state row)."""
    if state is not None and (source is None or not source.from_table or not is_final(state)):
        return None
    totals = totals_query.app_totals(conn, run_id)
    if totals is None:
        return None
    run_tasks = sum(states.get("pending", 0) for states in totals.values())
    app_tasks = totals.get(app, {}).get("pending", 0) if app is not None else None
    if state is None:
        return (run_tasks if app_tasks is None else app_tasks), run_tasks, app_tasks, None
    in_state = {
        name: totals_query.current_states(states).get(state, 0) for name, states in totals.items()
    }
    run_in_state = sum(in_state.values())
    matching = run_in_state if app is None else in_state.get(app, 0)
    return matching, run_tasks, app_tasks, run_in_state


def list_tasks(
    conn: sqlite3.Connection,
    run_id: str,
    *,
    app: str | None = None,
    state: str | None = None,
    sort: str = "task_id",
    descending: bool = False,
    limit: int = 50,
    offset: int = 0,
) -> Page[TaskRow]:
    """A page of a run's tasks, optionally of one app and/or in one final state.

    The page's task ids are chosen first with only the columns the filter and order need;
    the per-task details (state, tries, host) are then looked up for those rows alone, so a
    late page costs no more than the first."""
    limit, offset = _bounded(limit, offset)
    info = describe_database(conn)
    if not info.has("task"):
        return Page([], 0, limit, offset)
    conditions, params = ["t.run_id = :run"], {"run": run_id}
    if app is not None:
        conditions.append("t.task_func_name = :app")
        params["app"] = app
    has_status = info.has("status")
    source = state_source(conn, info, run_id) if has_status else None
    tables = "task t"
    if state is not None:
        if source is None:
            if state != "pending":
                return Page([], 0, limit, offset)
        else:
            tables, condition = _state_filter(source, state, one_app=app is not None)
            conditions.append(condition)
            params["state"] = state
    where = " AND ".join(conditions)
    order = TASK_SORTS.get(sort, "t.task_id")
    direction = "DESC" if descending else "ASC"
    chosen = (
        f"SELECT t.task_id{{total}} FROM {tables} WHERE {where} "
        f"ORDER BY {order} {direction}, t.task_id LIMIT :limit OFFSET :offset"
    )
    page_params = {**params, "limit": limit, "offset": offset}
    kept = _kept_counts(conn, run_id, app, state, source)
    total = kept[0] if kept else None
    ids: list[int] | None = None
    if kept and kept[0] <= offset:  # the totals say the page is empty (no failed task, say)
        ids = []
    elif kept and sort == "task_id":  # an index walk in id order, where one is cheap enough
        ids = walked_page(
            conn,
            run_id,
            app=app,
            state=state,
            total=kept[0],
            run_tasks=kept[1],
            app_tasks=kept[2],
            state_tasks=kept[3],
            descending=descending,
            offset=offset,
            limit=limit,
        )
    elif (
        kept
        and sort == "duration"
        and source is not None
        and source.from_table
        and durations_kept(conn, run_id)
    ):  # a walk of the writer's stored durations, where it is cheap enough
        ids = duration_page(
            conn,
            run_id,
            app=app,
            state=state,
            total=kept[0],
            run_tasks=kept[1],
            descending=descending,
            offset=offset,
            limit=limit,
        )
    if ids is None and state is not None and source is not None and not source.from_table:
        # The state filter reads the whole status history: count in the same pass.
        rows = conn.execute(chosen.format(total=", COUNT(*) OVER ()"), page_params).fetchall()
        ids = [row[0] for row in rows]
        total = rows[0][1] if rows else None
    elif ids is None:
        ids = [row[0] for row in conn.execute(chosen.format(total=""), page_params)]
    if total is None:
        total = conn.execute(f"SELECT COUNT(*) FROM {tables} WHERE {where}", params).fetchone()[0]
    state_sql = f"COALESCE({source.of_task()}, 'pending')" if source else "'pending'"
    tries_sql = hostname_sql = "NULL"
    if info.has("try"):
        tries_sql = (
            "(SELECT COUNT(*) FROM try y WHERE y.run_id = t.run_id AND y.task_id = t.task_id)"
        )
        hostname_sql = (
            "(SELECT y.hostname FROM try y WHERE y.run_id = t.run_id AND y.task_id = t.task_id "
            "ORDER BY y.try_id DESC LIMIT 1)"
        )
    if not ids:
        return Page([], total, limit, offset)
    marks = ",".join("?" * len(ids))
    rows = conn.execute(
        f"SELECT t.task_id, t.task_func_name, {state_sql}, t.task_time_invoked, "
        f"t.task_time_returned, {DURATION_SQL}, COALESCE({tries_sql}, 0), {hostname_sql}, "
        f"t.task_fail_count FROM task t WHERE t.run_id = ? AND t.task_id IN ({marks})",
        (run_id, *ids),
    ).fetchall()
    position = {task_id: index for index, task_id in enumerate(ids)}
    rows.sort(key=lambda row: position[row[0]])
    return Page([TaskRow(*row) for row in rows], total, limit, offset)


def state_history(conn: sqlite3.Connection, run_id: str, task_id: int) -> list[StatusEvent]:
    """Every state transition of a task, in time order."""
    if not describe_database(conn).has("status"):
        return []
    return [
        StatusEvent(state, timestamp, try_id)
        for state, timestamp, try_id in conn.execute(
            "SELECT task_status_name, timestamp, try_id FROM status "
            "WHERE run_id = ? AND task_id = ? ORDER BY timestamp, try_id LIMIT 10000",
            (run_id, task_id),
        )
    ]


def _tries(
    conn: sqlite3.Connection, info: DatabaseInfo, run_id: str, task_id: int
) -> list[TryRecord]:
    if not info.has("try"):
        return []
    failures: dict[int, TryFailureRow] = {}
    if info.has("taskscope_try_failure"):
        for try_id, etype, message, tb, code in conn.execute(
            "SELECT try_id, exception_type, message, traceback, exit_code "
            "FROM taskscope_try_failure WHERE run_id = ? AND task_id = ?",
            (run_id, task_id),
        ):
            failures[try_id] = TryFailureRow(etype, message, tb, code)
    wait = seconds_between_sql("y.task_try_time_launched", "y.task_try_time_running")
    ended = (
        "(SELECT MIN(s.timestamp) FROM status s WHERE s.task_id = y.task_id AND s.run_id = "
        "y.run_id AND s.task_status_name = 'running_ended' AND s.try_id = y.try_id)"
    )
    workers = task_worker_tries(conn, run_id, task_id)
    tries = []
    for row in conn.execute(
        "SELECT try_id, task_executor, hostname, block_id, task_try_time_launched, "
        f"task_try_time_running, task_try_time_returned, task_fail_history, task_joins, {wait}, "
        f"{run_time_sql('y')}, {ended}, "
        f"{seconds_between_sql(ended, 'y.task_try_time_returned')} "
        "FROM try y WHERE run_id = ? AND task_id = ? ORDER BY try_id LIMIT 1000",
        (run_id, task_id),
    ):
        worker = workers.get(row[0])
        tries.append(
            TryRecord(
                try_id=row[0],
                executor=row[1],
                hostname=row[2],
                block_id=row[3],
                time_launched=row[4],
                time_running=row[5],
                time_returned=row[6],
                fail_history=row[7] or None,
                joins=id_list(row[8]),
                failure=failures.get(row[0]),
                wait_s=row[9],
                run_s=row[10],
                worker=worker.worker if worker else None,
                time_ended=row[11],
                return_delay_s=row[12],
            )
        )
    return tries


def _dependents(
    conn: sqlite3.Connection, info: DatabaseInfo, run_id: str, task_id: int
) -> list[int]:
    """Tasks that depend on or join `task_id` (a text match, since the ids are stored as CSV).
    Join apps are found whatever their id: their inner tasks are submitted after them."""
    kept = totals_query.dependents(conn, run_id, task_id)
    if kept is not None:
        return kept
    key = str(task_id)
    params = {
        "run": run_id,
        "exact": key,
        "first": f"{key},%",
        "last": f"%,{key}",
        "middle": f"%,{key},%",
    }
    match = "({col} = :exact OR {col} LIKE :first OR {col} LIKE :last OR {col} LIKE :middle)"
    # A dependent is submitted after its dependencies, so only larger ids can match: a range
    # scan of the primary key (+run_id keeps SQLite off the (run_id, app) index).
    found = {
        row[0]
        for row in conn.execute(
            f"SELECT task_id FROM task WHERE task_id > :id AND +run_id = :run AND "
            f"{match.format(col='task_depends')} LIMIT 1000",
            {**params, "id": task_id},
        )
    }
    if info.has("try"):
        found.update(
            row[0]
            for row in conn.execute(
                f"SELECT DISTINCT task_id FROM try WHERE run_id = :run AND "
                f"{match.format(col='task_joins')} LIMIT 1000",
                params,
            )
        )
    return sorted(found)


def task_detail(conn: sqlite3.Connection, run_id: str, task_id: int) -> TaskDetail | None:
    """Everything recorded about one task; None if it does not exist."""
    info = describe_database(conn)
    if not info.has("task"):
        return None
    row = conn.execute(
        "SELECT task_func_name, task_depends, task_memoize, task_hashsum, task_inputs, "
        "task_outputs, task_stdin, task_stdout, task_stderr, task_time_invoked, "
        f"task_time_returned, {DURATION_SQL}, task_fail_count, task_fail_cost "
        "FROM task t WHERE run_id = ? AND task_id = ?",
        (run_id, task_id),
    ).fetchone()
    if row is None:
        return None
    history = state_history(conn, run_id, task_id)
    tries = _tries(conn, info, run_id, task_id)
    joins = sorted({j for attempt in tries for j in attempt.joins})
    return TaskDetail(
        run_id=run_id,
        task_id=task_id,
        app=row[0],
        state=history[-1].state if history else "pending",
        depends=id_list(row[1]),
        dependents=_dependents(conn, info, run_id, task_id),
        joins=joins,
        memoize=str(row[2]).strip().lower() in ("1", "true"),
        hashsum=row[3] or None,
        inputs=row[4],
        outputs=row[5],
        stdin=row[6] or None,
        stdout=row[7] or None,
        stderr=row[8] or None,
        time_invoked=row[9],
        time_returned=row[10],
        duration_s=row[11],
        fail_count=row[12] or 0,
        fail_cost=row[13] or 0.0,
        tries=tries,
        history=history,
    )


def timeline(
    conn: sqlite3.Connection,
    run_id: str,
    *,
    limit: int = 500,
    offset: int = 0,
    task_ids: list[int] | None = None,
) -> Page[TimelineTask]:
    """A page of tasks (by id, or the tasks `task_ids`) with the time they spent in each
    state, for a Gantt chart."""
    limit, offset = _bounded(limit, offset)
    info = describe_database(conn)
    if not (info.has("task") and info.has("status")):
        return Page([], 0, limit, offset)
    if task_ids is not None:
        chosen = sorted(set(task_ids))[:limit]
        marks = ",".join("?" * len(chosen))
        tasks = (
            conn.execute(
                f"SELECT task_id, task_func_name FROM task WHERE run_id = ? AND task_id IN "
                f"({marks}) "
                "ORDER BY task_id",
                (run_id, *chosen),
            ).fetchall()
            if chosen
            else []
        )
        total = len(tasks)
    else:
        total = conn.execute("SELECT COUNT(*) FROM task WHERE run_id = ?", (run_id,)).fetchone()[0]
        tasks = conn.execute(
            "SELECT task_id, task_func_name FROM task WHERE run_id = ? ORDER BY task_id "
            "LIMIT ? OFFSET ?",
            (run_id, limit, offset),
        ).fetchall()
    if not tasks:
        return Page([], total, limit, offset)
    apps = dict(tasks)
    end_of_run: list[str | None] = []  # read only if a task is still in an open state

    def run_end() -> str | None:
        if not end_of_run:  # without an index on status.run_id this is a full pass
            end_of_run.append(_last_activity(conn, run_id))
        return end_of_run[0]

    events: dict[int, list[tuple[str, str]]] = {task_id: [] for task_id in apps}
    if task_ids is not None:  # scattered ids: a seek per task, not the range between them
        marks = ",".join("?" * len(apps))
        status_rows = conn.execute(
            "SELECT task_id, task_status_name, timestamp FROM status WHERE run_id = ? "
            f"AND task_id IN ({marks}) ORDER BY task_id, timestamp",
            (run_id, *apps),
        )
    else:
        status_rows = conn.execute(
            "SELECT task_id, task_status_name, timestamp FROM status WHERE run_id = ? "
            "AND task_id BETWEEN ? AND ? ORDER BY task_id, timestamp",
            (run_id, tasks[0][0], tasks[-1][0]),
        )
    for task_id, state, stamp in status_rows:
        if task_id in events:
            events[task_id].append((state, stamp))
    items = []
    for task_id, app in tasks:
        rows = events[task_id]
        segments = []
        for index, (state, start) in enumerate(rows):
            if index + 1 < len(rows):
                end = rows[index + 1][1]
            elif state in FINAL_STATES:
                continue  # a final state has no duration
            else:
                end = run_end() or start
            segments.append(TimelineSegment(state, start, end))
        items.append(TimelineTask(task_id, app, segments))
    return Page(items, total, limit, offset)
