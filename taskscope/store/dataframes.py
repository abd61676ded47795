"""A monitoring database as pandas DataFrames: Parsl's queries under their names, and
taskscope's own.

`taskscope.monitoring.queries.pandas` re-exports this module under the path Parsl users
import. Parsl's eight functions (``app_counts_for_workflow`` ... ``tries_for_workflow``) take
``(workflow_id, db)`` and return the same columns as Parsl's, timestamps as the stored text,
so a notebook written for Parsl runs unchanged; values travel as bound parameters instead of
being pasted into the SQL. taskscope's own functions return one row per record of the query
layer, with timestamps parsed (``datetime64``, naive: UTC for taskscope's runs, the
workflow host's local time for Parsl's; ``timestamp_convention`` in `runs` says which).

``db`` is an ``sqlite3`` connection or a database path or ``sqlite:///`` URL (opened
read-only for the call); Parsl's eight functions also take anything
``pandas.read_sql_query`` takes (an SQLAlchemy engine, as in Parsl).
"""

from __future__ import annotations

import dataclasses
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

try:
    import pandas as pd  # (no stubs: listed in pyproject's mypy overrides)
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "taskscope's DataFrame queries need pandas: pip install 'taskscope[pandas]'"
    ) from exc

from taskscope.store import query
from taskscope.store.analysis.critical_path import PathStep
from taskscope.store.analysis.report import RunAnalysis, analyze
from taskscope.store.analysis.stragglers import Straggler
from taskscope.store.id_lists import id_list
from taskscope.store.readonly import (
    describe_database,
    open_readonly,
    path_from_argument,
    written_by_taskscope,
)
from taskscope.store.records import AppStats, RunRow
from taskscope.store.task_state import state_source

# pandas takes several kinds of connection; Parsl's signatures name them "Any" too.
DB = Any
TIME_FORMAT = "ISO8601"

# Parsl's eight names (parsl.monitoring.queries.pandas) and taskscope's own, in one list.
__all__ = [
    "app_counts_for_workflow",
    "app_summary",
    "completion_times_for_workflow",
    "critical_path",
    "failure_groups",
    "failures",
    "nodes_for_workflow",
    "resources_for_task",
    "resources_for_workflow",
    "runs",
    "status_for_workflow",
    "stragglers",
    "task_states",
    "tasks_for_workflow",
    "tries_for_workflow",
    "usage",
    "worker_tries",
]


# ---- Parsl's queries -----------------------------------------------------------------------


def app_counts_for_workflow(workflow_id: Any, db: DB) -> pd.DataFrame:
    """task_func_name, frequency: how many tasks of each app the run has."""
    return _sql(
        "SELECT task_func_name, count(*) AS 'frequency' FROM task WHERE run_id = ? "
        "GROUP BY task_func_name",
        db,
        (workflow_id,),
    )


def nodes_for_workflow(workflow_id: Any, db: DB) -> pd.DataFrame:
    """Every node row of the run (worker pools joining, leaving, heartbeats)."""
    return _sql("SELECT * FROM node WHERE run_id = ?", db, (workflow_id,))


def resources_for_workflow(workflow_id: Any, db: DB) -> pd.DataFrame:
    """Every resource sample of the run."""
    return _sql("SELECT * FROM resource WHERE run_id = ?", db, (workflow_id,))


def resources_for_task(workflow_id: Any, task_id: Any, db: DB) -> pd.DataFrame:
    """Every resource sample of one task."""
    return _sql(
        "SELECT * FROM resource WHERE run_id = ? AND task_id = ?", db, (workflow_id, task_id)
    )


def status_for_workflow(workflow_id: Any, db: DB) -> pd.DataFrame:
    """run_id, task_id, task_status_name, timestamp: every state change of the run."""
    return _sql(
        "SELECT run_id, task_id, task_status_name, timestamp FROM status WHERE run_id = ?",
        db,
        (workflow_id,),
    )


def completion_times_for_workflow(workflow_id: Any, db: DB) -> pd.DataFrame:
    """task_id, task_func_name, task_time_returned of every task."""
    return _sql(
        "SELECT task_id, task_func_name, task_time_returned FROM task WHERE run_id = ?",
        db,
        (workflow_id,),
    )


def tasks_for_workflow(workflow_id: Any, db: DB) -> pd.DataFrame:
    """Every task row of the run."""
    return _sql("SELECT * FROM task WHERE run_id = ?", db, (workflow_id,))


def tries_for_workflow(workflow_id: Any, db: DB) -> pd.DataFrame:
    """task_id, task_func_name, task_time_returned, task_try_time_running,
    task_try_time_returned: one row per try."""
    return _sql(
        "SELECT task.task_id, task_func_name, task_time_returned, task_try_time_running, "
        "task_try_time_returned FROM task, try WHERE task.task_id = try.task_id "
        "AND task.run_id = ? AND try.run_id = ?",
        db,
        (workflow_id, workflow_id),
    )


# ---- taskscope's own -----------------------------------------------------------------------


def runs(db: DB) -> pd.DataFrame:
    """One row per run, newest first: status (running, completed, failed, aborted, lost),
    times, duration, tasks, and which timestamp convention its rows use."""
    with _connection(db) as conn:
        rows, offset = [], 0
        while True:
            page = query.list_runs(conn, limit=query.MAX_PAGE, offset=offset, with_counts=False)
            rows += page.items
            if not page.has_next:
                break
            offset += page.limit
    frame = _records(rows, RunRow, drop=("state_counts",))
    return _times(frame, "time_began", "time_completed", "last_heartbeat")


def task_states(workflow_id: str, db: DB) -> pd.DataFrame:
    """One row per task: task_id, app, state (its current state; pending when it has none
    yet), time_invoked, time_returned, duration_s, fail_count, depends (a list of ids)."""
    with _connection(db) as conn:
        info = describe_database(conn)
        state = "'pending'"
        join = ""
        if info.has("status"):
            source = state_source(conn, info, workflow_id)
            join = f"LEFT JOIN ({source.per_task(':run')} LIMIT -1) z ON z.task_id = t.task_id"
            state = "COALESCE(z.state, 'pending')"
        frame = pd.read_sql_query(
            f"SELECT t.task_id, t.task_func_name AS app, {state} AS state, t.task_time_invoked "
            "AS time_invoked, t.task_time_returned AS time_returned, "
            "(julianday(t.task_time_returned) - julianday(t.task_time_invoked)) * 86400.0 "
            "AS duration_s, t.task_fail_count AS fail_count, t.task_depends AS depends "
            f"FROM task t {join} WHERE t.run_id = :run ORDER BY t.task_id",
            conn,
            params={"run": workflow_id},
        )
    frame["depends"] = [id_list(text) for text in frame["depends"]]
    return _times(frame, "time_invoked", "time_returned")


def app_summary(workflow_id: str, db: DB) -> pd.DataFrame:
    """One row per app: tasks, completed, failed, unfinished, tries, mean duration (invoked
    -> returned) and mean run time per try on the worker's clock."""
    with _connection(db) as conn:
        return _records(query.app_summary(conn, workflow_id), AppStats)


def worker_tries(workflow_id: str, db: DB) -> pd.DataFrame:
    """One row per try that ran: task_id, try_id, app, worker, hostname, time_running,
    time_ended (on the worker's clock: running -> running_ended), run_s."""
    with _connection(db) as conn:
        info = describe_database(conn)
        if (
            info.has("taskscope_try_run")
            and conn.execute(
                "SELECT 1 FROM taskscope_try_run WHERE run_id = ? LIMIT 1", (workflow_id,)
            ).fetchone()
        ):
            frame = pd.read_sql_query(
                "SELECT r.task_id, r.try_id, r.app, r.worker, y.hostname, r.time_running, "
                "r.time_ended, r.time_ended - r.time_running AS run_s "
                "FROM taskscope_try_run r LEFT JOIN try y ON y.run_id = r.run_id "
                "AND y.task_id = r.task_id AND y.try_id = r.try_id WHERE r.run_id = ? "
                "ORDER BY r.time_running",
                conn,
                params=(workflow_id,),
            )
            for column in ("time_running", "time_ended"):  # epoch seconds, UTC
                frame[column] = pd.to_datetime(frame[column], unit="s")
            return frame
        if not info.has("try"):
            return pd.DataFrame(
                columns=[
                    "task_id",
                    "try_id",
                    "app",
                    "worker",
                    "hostname",
                    "time_running",
                    "time_ended",
                    "run_s",
                ]
            )
        ended = "y.task_try_time_returned"
        if info.has("status"):
            ended = (
                "COALESCE((SELECT MIN(s.timestamp) FROM status s WHERE s.task_id = "
                "y.task_id AND s.run_id = y.run_id AND s.try_id = y.try_id AND "
                "s.task_status_name = 'running_ended'), y.task_try_time_returned)"
            )
        worker = "NULL"
        if info.has("resource"):
            worker = (
                "(SELECT 'pid ' || r.psutil_process_pid FROM resource r WHERE "
                "r.run_id = y.run_id AND r.task_id = y.task_id AND r.try_id = y.try_id "
                "LIMIT 1)"
            )
        frame = pd.read_sql_query(
            f"SELECT y.task_id, y.try_id, t.task_func_name AS app, {worker} AS worker, "
            f"y.hostname, y.task_try_time_running AS time_running, {ended} AS time_ended "
            "FROM try y JOIN task t ON t.run_id = y.run_id AND t.task_id = y.task_id "
            "WHERE y.run_id = ? AND y.task_try_time_running IS NOT NULL "
            "ORDER BY y.task_try_time_running",
            conn,
            params=(workflow_id,),
        )
    frame = _times(frame, "time_running", "time_ended")
    frame["run_s"] = (frame["time_ended"] - frame["time_running"]).dt.total_seconds()
    return frame


def usage(workflow_id: str, db: DB, buckets: int = 200) -> pd.DataFrame:
    """Run-wide use over `buckets` equal intervals (index: each interval's start):
    cpu_cores, memory_bytes and workers_busy, time-weighted averages, and the capacity
    (cpus, memory, workers) as columns of constant value."""
    with _connection(db) as conn:
        series = query.run_usage(conn, workflow_id, buckets=buckets)
    if series is None:
        return pd.DataFrame(columns=["cpu_cores", "memory_bytes", "workers_busy"])
    frame = pd.DataFrame(
        {
            "cpu_cores": series.cpu_cores,
            "memory_bytes": series.memory_bytes,
            "workers_busy": series.workers_busy,
        },
        index=pd.to_datetime(pd.Series(series.times, name="time"), format=TIME_FORMAT),
    )
    frame["cpus"] = series.capacity.cpus
    frame["memory_capacity_bytes"] = series.capacity.memory_bytes
    frame["workers"] = series.capacity.workers
    frame.attrs["bucket_seconds"] = series.bucket_seconds
    frame.attrs["sample_fraction"] = series.sample_fraction
    return frame


def failures(workflow_id: str, db: DB) -> pd.DataFrame:
    """One row per failed try: task_id, try_id, app, exception_type, message, exit_code
    (taskscope's runs), or the exception text Parsl keeps in task_fail_history."""
    with _connection(db) as conn:
        info = describe_database(conn)
        if written_by_taskscope(conn, info, workflow_id) and info.has("taskscope_try_failure"):
            return pd.read_sql_query(
                "SELECT f.task_id, f.try_id, t.task_func_name AS app, f.exception_type, "
                "f.message, f.exit_code FROM taskscope_try_failure f JOIN task t ON "
                "t.run_id = f.run_id AND t.task_id = f.task_id WHERE f.run_id = ? "
                "ORDER BY f.task_id, f.try_id",
                conn,
                params=(workflow_id,),
            )
        if not info.has("try"):
            return pd.DataFrame(
                columns=["task_id", "try_id", "app", "exception_type", "message", "exit_code"]
            )
        return pd.read_sql_query(
            "SELECT y.task_id, y.try_id, t.task_func_name AS app, NULL AS exception_type, "
            "y.task_fail_history AS message, NULL AS exit_code FROM try y JOIN task t ON "
            "t.run_id = y.run_id AND t.task_id = y.task_id WHERE y.run_id = ? AND "
            "y.task_fail_history IS NOT NULL AND y.task_fail_history != '' "
            "ORDER BY y.task_id, y.try_id",
            conn,
            params=(workflow_id,),
        )


def _analysis(workflow_id: str, db: DB) -> RunAnalysis:
    with _connection(db) as conn:
        return analyze(conn, workflow_id, read_files=False)


def failure_groups(workflow_id: str, db: DB) -> pd.DataFrame:
    """One row per failure group of `taskscope analyze`: cause, signature, count (failed
    tries; tasks that did not run, for dependency groups), tasks, apps, permanent,
    retried_then_succeeded, concentration (docs/analysis.md explains the grouping)."""
    groups = _analysis(workflow_id, db).failures
    return pd.DataFrame(
        [
            {
                "cause": g.cause,
                "signature": g.signature,
                "exception_type": g.exception_type,
                "where": g.where,
                "count": g.count,
                "tasks": list(g.tasks),
                "apps": list(g.apps),
                "permanent": g.permanent,
                "retried_then_succeeded": g.retried_then_succeeded,
                "unfinished": g.unfinished,
                "concentration": g.concentration,
                "cpu_s_failed": g.cpu_s_failed,
                "first": g.first,
                "last": g.last,
            }
            for g in groups
        ],
        columns=[
            "cause",
            "signature",
            "exception_type",
            "where",
            "count",
            "tasks",
            "apps",
            "permanent",
            "retried_then_succeeded",
            "unfinished",
            "concentration",
            "cpu_s_failed",
            "first",
            "last",
        ],
    )


def critical_path(workflow_id: str, db: DB) -> pd.DataFrame:
    """The chain of tasks that set the run's makespan, one row per step, with where its time
    went (dependency wait, failed tries, worker wait, dispatch, run, return); the frame's
    ``attrs`` hold the makespan, the floor (unlimited workers) and the verdict."""
    path = _analysis(workflow_id, db).critical_path
    frame = _records(path.tasks, PathStep)
    frame.attrs.update(
        {
            "makespan_s": path.makespan_s,
            "floor_s": path.floor_s,
            "verdict": path.verdict,
            "truncated": path.truncated,
        }
    )
    return frame


def stragglers(workflow_id: str, db: DB) -> pd.DataFrame:
    """Tries that ran far longer than their app's median, longest first."""
    return _records(_analysis(workflow_id, db).stragglers, Straggler)


# ---- plumbing --------------------------------------------------------------------------------


@contextmanager
def _connection(db: DB) -> Iterator[sqlite3.Connection]:
    """An sqlite3 connection for `db`; one this opened (from a path) is closed at the end."""
    if isinstance(db, sqlite3.Connection):
        yield db
        return
    if isinstance(db, (str, Path)):
        conn = open_readonly(path_from_argument(str(db), Path.cwd()))
        try:
            yield conn
        finally:
            conn.close()
        return
    raise TypeError(
        f"taskscope's own queries take an sqlite3 connection or a database path, not {db!r} "
        "(Parsl's eight queries take any connection pandas.read_sql_query takes)"
    )


def _sql(sql: str, db: DB, params: tuple[Any, ...]) -> pd.DataFrame:
    if isinstance(db, (str, Path)):
        with _connection(db) as conn:
            return pd.read_sql_query(sql, conn, params=params)
    return pd.read_sql_query(sql, db, params=params)


def _records(items: list[Any], record_type: type, drop: tuple[str, ...] = ()) -> pd.DataFrame:
    """One row per dataclass record; the columns are the record's fields even with no rows."""
    names = [f.name for f in dataclasses.fields(record_type) if f.name not in drop]
    return pd.DataFrame(
        [{name: getattr(item, name) for name in names} for item in items], columns=names
    )


def _times(frame: pd.DataFrame, *columns: str) -> pd.DataFrame:
    for column in columns:
        if column in frame:
            frame[column] = pd.to_datetime(frame[column], format=TIME_FORMAT, errors="coerce")
    return frame
