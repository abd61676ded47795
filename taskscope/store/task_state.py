"""Where a task's current state comes from: the writer's state table, or the status history.

A task's state is its latest status row. Computing that from ``status`` (about ten rows per
task) costs a pass over the run's whole history, so taskscope's writer also keeps
``taskscope_task_state``: one row per task holding its latest state. Readers use that table
for a run when it has rows for the run, and fall back to the status history otherwise
(databases written by Parsl, or by a writer that predates the table).

`StateSource` hands out the SQL for either case so that queries do not care which one they got.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from taskscope.store.key_order import primary_key_columns
from taskscope.store.records import DatabaseInfo
from taskscope.store.timestamps import seconds_between_sql

STATE_TABLE = "taskscope_task_state"
# A task's duration (invoked -> returned, seconds) from its row `t`: what pages show, and
# what the writer stores in the state table when the task ends (to sort by).
TASK_DURATION_SQL = seconds_between_sql("t.task_time_invoked", "t.task_time_returned")

# The status primary key (task_id, run_id, task_status_name, timestamp) gives SQLite an
# automatic index that holds every column the fallback needs. For a run that is most of the
# database, one covering scan of it in task order is about twice as fast as a seek per task
# (measured at 100,000 tasks: 220 ms against 510 ms); for a small run the seeks win. Where
# the key leads with run_id (taskscope's WITHOUT ROWID layout, schema.py) the scan reads the
# run's rows only, so it wins for a run of any size.
_STATUS_PK_INDEX = "sqlite_autoindex_status_1"
_STATUS_KEY = {"task_id", "run_id", "task_status_name", "timestamp"}


@dataclass(frozen=True)
class StateSource:
    """SQL for the current state of a run's tasks."""

    run_id: str
    from_table: bool  # True: taskscope_task_state; False: the status history
    covering_index: bool  # the fallback may scan status's primary-key index

    def of_task(self, task_alias: str = "t") -> str:
        """A scalar subquery: the state of task `task_alias` (NULL when it has none yet).
        Cheap for a page of tasks; for a whole run use `per_task` instead."""
        if self.from_table:
            return (
                f"(SELECT z.state FROM {STATE_TABLE} z WHERE z.run_id = {task_alias}.run_id "
                f"AND z.task_id = {task_alias}.task_id)"
            )
        return (
            f"(SELECT z.task_status_name FROM status z WHERE z.run_id = {task_alias}.run_id "
            f"AND z.task_id = {task_alias}.task_id ORDER BY z.timestamp DESC LIMIT 1)"
        )

    def per_task(self, param: str = ":run") -> str:
        """A subquery of (task_id, state) rows, one per task of the run that has a state.

        Where it pays (`state_source`) the fallback scans status's primary-key index with
        SQLite's bare-column rule (with MAX(timestamp) in a GROUP BY, the other columns come
        from the row holding the maximum); otherwise it seeks each task."""
        if self.from_table:
            return f"SELECT task_id, state FROM {STATE_TABLE} WHERE run_id = {param}"
        if self.covering_index:
            return (
                "SELECT task_id, state FROM (SELECT task_id, task_status_name AS state, "
                f"MAX(timestamp) FROM status INDEXED BY {_STATUS_PK_INDEX} "
                f"WHERE run_id = {param} GROUP BY task_id)"
            )
        # A run that is a small part of the database: one seek per task into the status
        # primary key (task_id, run_id, ...) instead of a pass over every run's history.
        # LIMIT -1 keeps the subquery from being flattened, which would evaluate it twice.
        return (
            f"SELECT task_id, state FROM (SELECT t.task_id, {self.of_task('t')} AS state "
            f"FROM task t WHERE t.run_id = {param} LIMIT -1) WHERE state IS NOT NULL"
        )


def state_source(
    conn: sqlite3.Connection, info: DatabaseInfo, run_id: str, run_tasks: int | None = None
) -> StateSource:
    """The fastest correct source of task states for `run_id` in this database
    (`run_tasks`: the run's number of tasks, when the caller knows it)."""
    from_table = False
    if info.has(STATE_TABLE):
        from_table = (
            conn.execute(
                f"SELECT 1 FROM {STATE_TABLE} WHERE run_id = ? LIMIT 1", (run_id,)
            ).fetchone()
            is not None
        )
    covering = False
    if not from_table and info.has("status"):
        key = primary_key_columns(conn, "status")
        covering = set(key) >= _STATUS_KEY and (
            key[0] == "run_id" or _is_most_of_the_database(conn, run_id, run_tasks)
        )
    return StateSource(run_id, from_table, covering)


def _is_most_of_the_database(conn: sqlite3.Connection, run_id: str, run_tasks: int | None) -> bool:
    """The covering scan of Parsl's key order reads every run's history, so it only pays off
    for a run that holds a large share of the database; a small run is cheaper through its
    (run_id, ...) index."""
    if run_tasks is None:
        run_tasks = conn.execute(
            "SELECT COUNT(*) FROM task WHERE run_id = ?", (run_id,)
        ).fetchone()[0]
    # The largest rowid stands in for the table's size: one b-tree descent, not a count.
    all_tasks = conn.execute("SELECT MAX(rowid) FROM task").fetchone()[0] or 0
    return run_tasks >= 1000 and run_tasks * 4 >= all_tasks


def state_counts_sql(source: StateSource) -> str:
    """(state, count) rows for the run's tasks that have a state (parameter :run)."""
    if source.from_table:
        return f"SELECT state, COUNT(*) FROM {STATE_TABLE} WHERE run_id = :run GROUP BY state"
    return f"SELECT state, COUNT(*) FROM ({source.per_task()}) GROUP BY state"


def app_state_counts(
    conn: sqlite3.Connection, source: StateSource, app: str | None = None
) -> dict[str, dict[str, int]]:
    """app -> state -> number of tasks (tasks without a state count as pending).

    With the state table, only the tasks *not* in the run's commonest state are joined to
    their app (through the (run_id, state) index); the commonest state's count per app is what
    remains of the app's task count. On a finished run of mostly exec_done tasks that is a
    few thousand lookups instead of one per task."""
    params = {"run": source.run_id, "app": app}
    only_app = " AND t.task_func_name = :app" if app is not None else ""
    app_tasks = dict(
        conn.execute(
            f"SELECT t.task_func_name, COUNT(*) FROM task t WHERE t.run_id = :run{only_app} "
            "GROUP BY t.task_func_name",
            params,
        ).fetchall()
    )
    counts: dict[str, dict[str, int]] = {name: {} for name in app_tasks}
    run_states: dict[str, int] = {}
    stateless = -1
    if source.from_table:  # cheap here (the (run_id, state) index); a full pass otherwise
        run_states = dict(conn.execute(state_counts_sql(source), params).fetchall())
        run_tasks = conn.execute(
            "SELECT COUNT(*) FROM task WHERE run_id = :run", params
        ).fetchone()[0]
        stateless = run_tasks - sum(run_states.values())
    # Either only the tasks not in the commonest state (their rest is that state), or every
    # task with a state (the rest is pending: tasks with no status row yet).
    if source.from_table and run_states and stateless == 0:
        rest_state = max(run_states, key=lambda s: run_states[s])
        others = [s for s in run_states if s != rest_state]
        marks = ",".join(f":s{i}" for i in range(len(others)))
        sql = (
            f"SELECT t.task_func_name, z.state, COUNT(*) FROM {STATE_TABLE} z "
            "JOIN task t ON t.task_id = z.task_id AND t.run_id = z.run_id "
            f"WHERE z.run_id = :run AND z.state IN ({marks}){only_app} GROUP BY 1, 2"
        )
        params.update({f"s{i}": s for i, s in enumerate(others)})
        rows = conn.execute(sql, params).fetchall() if others else []
    elif not source.from_table and app is not None:
        # One app from the status history: a lookup per task of the app, not a whole pass.
        rest_state = "pending"
        rows = conn.execute(
            f"SELECT t.task_func_name, {source.of_task()} AS state, COUNT(*) FROM task t "
            f"WHERE t.run_id = :run{only_app} AND state IS NOT NULL GROUP BY 1, 2",
            params,
        ).fetchall()
    else:
        rest_state = "pending"
        # CROSS JOIN and LIMIT -1: the states are computed once, in task order, and each is
        # joined to its task by primary key (not the other way round).
        rows = conn.execute(
            f"SELECT t.task_func_name, z.state, COUNT(*) FROM ({source.per_task()} LIMIT -1) z "
            "CROSS JOIN task t ON t.task_id = z.task_id AND t.run_id = :run"
            f"{only_app} GROUP BY 1, 2",
            params,
        ).fetchall()
    for name, state, n in rows:
        counts.setdefault(name, {})[state] = counts.get(name, {}).get(state, 0) + n
    for name, total in app_tasks.items():
        rest = total - sum(counts[name].values())
        if rest > 0:
            counts[name][rest_state] = counts[name].get(rest_state, 0) + rest
    return counts
