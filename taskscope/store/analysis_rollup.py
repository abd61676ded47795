"""Totals the analysis reads instead of passes over a million tries, kept as the rows are written.

`taskscope analyze` at 10^6 tasks spent most of its time stepping SQLite through every try and
every task (bench/README.md, Analysis): the tries per (host, block) with their failures, and
the critical path's floor (each try's run time, each task's dependency list, each join's
joined tasks). These tables hold the same figures in small integer-keyed rows:

- ``taskscope_run_key``: a small integer per run, so the per-try rows do not repeat a 36-character
  run id, made when the writer sees the run's start; ``from_start`` says no row of the run
  was there before, so every one of its rows passed through the triggers below (a run begun
  by an older taskscope, or by Parsl, has no key or ``from_start`` 0 and is read from Parsl's
  tables, as before);
- ``taskscope_place_tries``: tries and failed tries per (host, block, user's executor or not);
- ``taskscope_try_time``: each try's run time (running -> returned, the same SQL expression the
  analysis used on the try table) and its joined tasks;
- ``taskscope_task_depends``: the dependency list of each task that has one.

They are kept by SQLite triggers on the writer's own statements, not by Python in the writer:
a try's host, block, executor and times are merged from several messages by the upserts'
column rules (write_batch.TRY_TABLE), and a trigger sees the row as merged, old and new, so each
total moves exactly when the row does, whatever order the messages came in. A Parsl column is
never touched; a database's Parsl tables read the same with or without the triggers.
"""

from __future__ import annotations

import sqlite3

from taskscope.store.timestamps import seconds_between_sql
from taskscope.store.worker_rollup import INTERNAL_EXECUTOR_LABELS

RUN_KEY_TABLE = "taskscope_run_key"
PLACE_TABLE = "taskscope_place_tries"
TRY_TIME_TABLE = "taskscope_try_time"
DEPENDS_TABLE = "taskscope_task_depends"

ANALYSIS_ROLLUP_TABLES = f"""
CREATE TABLE IF NOT EXISTS {RUN_KEY_TABLE} (
	run_key INTEGER PRIMARY KEY,
	run_id TEXT NOT NULL UNIQUE,
	from_start INTEGER NOT NULL DEFAULT 0
);
-- hostname and block_id are '' where the try row has NULL: key columns cannot be NULL.
CREATE TABLE IF NOT EXISTS {PLACE_TABLE} (
	run_key INTEGER NOT NULL,
	hostname TEXT NOT NULL,
	block_id TEXT NOT NULL,
	users INTEGER NOT NULL,
	tries INTEGER NOT NULL,
	failed INTEGER NOT NULL,
	PRIMARY KEY (run_key, hostname, block_id, users)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS {TRY_TIME_TABLE} (
	run_key INTEGER NOT NULL,
	task_id INTEGER NOT NULL,
	try_id INTEGER NOT NULL,
	users INTEGER NOT NULL,
	run_s FLOAT,
	joins TEXT,
	PRIMARY KEY (run_key, task_id, try_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS {DEPENDS_TABLE} (
	run_key INTEGER NOT NULL,
	task_id INTEGER NOT NULL,
	depends TEXT NOT NULL,
	PRIMARY KEY (run_key, task_id)
) WITHOUT ROWID
"""

_INTERNAL = ", ".join(f"'{label}'" for label in sorted(INTERNAL_EXECUTOR_LABELS))


def _users(row: str) -> str:
    """A user's try, as the analysis tests it: `COALESCE(task_executor NOT IN (...), 0)`."""
    return f"COALESCE({row}.task_executor NOT IN ({_INTERNAL}), 0)"


def _key(row: str) -> str:
    return f"(SELECT run_key FROM {RUN_KEY_TABLE} WHERE run_id = {row}.run_id)"


def _failed(row: str) -> str:
    return (
        f"EXISTS (SELECT 1 FROM taskscope_try_failure f WHERE f.run_id = {row}.run_id "
        f"AND f.task_id = {row}.task_id AND f.try_id = {row}.try_id)"
    )


def _place_added(row: str) -> str:
    return (
        f"INSERT INTO {PLACE_TABLE} (run_key, hostname, block_id, users, tries, failed) "
        f"SELECT k.run_key, COALESCE({row}.hostname, ''), COALESCE({row}.block_id, ''), "
        f"{_users(row)}, 1, {_failed(row)} FROM {RUN_KEY_TABLE} k WHERE k.run_id = {row}.run_id "
        "ON CONFLICT (run_key, hostname, block_id, users) DO UPDATE SET "
        "tries = tries + 1, failed = failed + excluded.failed"
    )


def _place_removed(row: str) -> str:
    return (
        f"UPDATE {PLACE_TABLE} SET tries = tries - 1, failed = failed - {_failed(row)} "
        f"WHERE run_key = {_key(row)} AND hostname = COALESCE({row}.hostname, '') "
        f"AND block_id = COALESCE({row}.block_id, '') AND users = {_users(row)}"
    )


_RUN_S = seconds_between_sql("new.task_try_time_running", "new.task_try_time_returned")
_PLACE_CHANGED = (
    "COALESCE(old.hostname, '') IS NOT COALESCE(new.hostname, '') "
    "OR COALESCE(old.block_id, '') IS NOT COALESCE(new.block_id, '') "
    f"OR {_users('old')} IS NOT {_users('new')}"
)
_TIME_CHANGED = (
    "old.task_try_time_running IS NOT new.task_try_time_running "
    "OR old.task_try_time_returned IS NOT new.task_try_time_returned "
    f"OR {_users('old')} IS NOT {_users('new')} OR old.task_joins IS NOT new.task_joins"
)

# Each is one CREATE TRIGGER: their bodies hold semicolons, so they are run one by one.
ANALYSIS_ROLLUP_TRIGGERS = (
    f"""CREATE TRIGGER IF NOT EXISTS taskscope_try_added AFTER INSERT ON try BEGIN
    {_place_added("new")};
    INSERT OR REPLACE INTO {TRY_TIME_TABLE} (run_key, task_id, try_id, users, run_s, joins)
        SELECT k.run_key, new.task_id, new.try_id, {_users("new")}, {_RUN_S},
            NULLIF(new.task_joins, '')
        FROM {RUN_KEY_TABLE} k WHERE k.run_id = new.run_id;
END""",
    f"""CREATE TRIGGER IF NOT EXISTS taskscope_try_moved
AFTER UPDATE OF hostname, block_id, task_executor ON try WHEN {_PLACE_CHANGED} BEGIN
    {_place_removed("old")};
    {_place_added("new")};
END""",
    f"""CREATE TRIGGER IF NOT EXISTS taskscope_try_timed
AFTER UPDATE OF task_try_time_running, task_try_time_returned, task_executor, task_joins ON try
WHEN {_TIME_CHANGED} BEGIN
    UPDATE {TRY_TIME_TABLE} SET users = {_users("new")}, run_s = {_RUN_S},
        joins = NULLIF(new.task_joins, '')
    WHERE run_key = {_key("new")} AND task_id = new.task_id AND try_id = new.try_id;
END""",
    # BEFORE: an INSERT OR REPLACE of a try's failure already recorded must not count twice.
    f"""CREATE TRIGGER IF NOT EXISTS taskscope_try_failure_added
BEFORE INSERT ON taskscope_try_failure WHEN NOT {_failed("new")} BEGIN
    UPDATE {PLACE_TABLE} SET failed = failed + 1
    WHERE (run_key, hostname, block_id, users) = (
        SELECT k.run_key, COALESCE(y.hostname, ''), COALESCE(y.block_id, ''), {_users("y")}
        FROM try y JOIN {RUN_KEY_TABLE} k ON k.run_id = y.run_id
        WHERE y.run_id = new.run_id AND y.task_id = new.task_id AND y.try_id = new.try_id);
END""",
    f"""CREATE TRIGGER IF NOT EXISTS taskscope_task_added AFTER INSERT ON task
WHEN new.task_depends IS NOT NULL AND new.task_depends != '' BEGIN
    INSERT OR REPLACE INTO {DEPENDS_TABLE} (run_key, task_id, depends)
        SELECT k.run_key, new.task_id, new.task_depends FROM {RUN_KEY_TABLE} k
        WHERE k.run_id = new.run_id;
END""",
    f"""CREATE TRIGGER IF NOT EXISTS taskscope_task_depends_changed
AFTER UPDATE OF task_depends ON task WHEN old.task_depends IS NOT new.task_depends BEGIN
    DELETE FROM {DEPENDS_TABLE} WHERE run_key = {_key("new")} AND task_id = new.task_id;
    INSERT INTO {DEPENDS_TABLE} (run_key, task_id, depends)
        SELECT k.run_key, new.task_id, new.task_depends FROM {RUN_KEY_TABLE} k
        WHERE k.run_id = new.run_id AND new.task_depends IS NOT NULL
        AND new.task_depends != '';
END""",
)

# The writer, at a run's start: the triggers count the rows of runs with a key only, so the
# totals hold all of a run's rows when it had none before (a run's start is the kernel's first
# message; a worker's report overtaking it leaves the run without totals, read as before).
MARK_RUN_FROM_START = f"""
INSERT OR IGNORE INTO {RUN_KEY_TABLE} (run_id, from_start)
SELECT ?1, NOT EXISTS (SELECT 1 FROM try WHERE run_id = ?1)
    AND NOT EXISTS (SELECT 1 FROM task WHERE run_id = ?1)"""


def create_analysis_rollups(conn: sqlite3.Connection) -> None:
    """The tables and their triggers (idempotent; in the caller's transaction)."""
    for statement in ANALYSIS_ROLLUP_TABLES.split(";"):
        if statement.strip():
            conn.execute(statement)
    for trigger in ANALYSIS_ROLLUP_TRIGGERS:
        conn.execute(trigger)


def rollup_run_key(conn: sqlite3.Connection, run_id: str) -> int | None:
    """The run's key in these tables when they hold all of its rows, else None (the reader
    then computes from Parsl's tables: Parsl's runs, and runs begun by an older taskscope)."""
    try:
        row = conn.execute(
            f"SELECT run_key FROM {RUN_KEY_TABLE} WHERE run_id = ? AND from_start = 1", (run_id,)
        ).fetchone()
    except sqlite3.OperationalError:  # no such table: a Parsl or older taskscope database
        return None
    return row[0] if row else None
