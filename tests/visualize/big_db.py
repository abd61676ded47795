"""A taskscope database with one run of any size (10^5 or 10^6 tasks), written by bulk SQL in
seconds where `store/synthetic.py` (one Python row at a time, and a Python pass over every try
for the worker rollups) takes minutes.

Its run, `run-big`, is regular rather than realistic: task i is app APPS[i % 4] and depends on
task i - 1 unless it is a generate; it runs once, on worker `nodeH/wK`, for 80 ms. Every
hundredth task fails (tasks 99, 199, ...: summarize tasks, which nothing depends on), with one
of four exception types. Each table the dashboard reads is filled as the writer fills it:
task, try, status (5 rows a task), resource (1 a try), node, block, the latest state, the
worker rollups (try runs, per-second and per-minute occupancy, per-app totals), the state
flow, the app edges and dependents.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from taskscope.store.database import create_indexes
from taskscope.store.rollup_rebuild import add_task_durations
from taskscope.store.schema import (
    PARSL_TABLES,
    SCHEMA_VERSION,
    TASKSCOPE_TABLES,
    TIMESTAMP_CONVENTION,
)

RUN = "run-big"
APPS = ("generate", "transform", "combine", "summarize")
EXCEPTIONS = ("RuntimeError", "ValueError", "OSError", "KeyError")
HOSTS = 4
WORKERS_PER_HOST = 8
TRY_S = 0.08

_LANES = HOSTS * WORKERS_PER_HOST
# Epoch seconds of each task's events, from its id i and the run's start :t0 (a step of
# 0.1 s per round of all the run's workers).
_START = f"(:t0 + 1.0 + (i / {_LANES}) * 0.1)"
_RUNNING = f"({_START} + 0.005)"
_ENDED = f"({_RUNNING} + {TRY_S})"
_DONE = f"({_ENDED} + 0.001)"
_APP = (
    f"CASE i % {len(APPS)} " + " ".join(f"WHEN {k} THEN '{a}'" for k, a in enumerate(APPS)) + " END"
)
_HOST = f"'node' || (i % {HOSTS})"
_WORKER = f"{_HOST} || '/w' || ((i / {HOSTS}) % {WORKERS_PER_HOST})"
_FAILS = "(i % 100 = 99)"
_FINAL = f"CASE WHEN {_FAILS} THEN 'failed' ELSE 'exec_done' END"


def _ts(epoch_sql: str) -> str:
    """SQL for Parsl's timestamp text (UTC) of an epoch-seconds SQL expression (ms precision)."""
    return f"(strftime('%Y-%m-%d %H:%M:%f', {epoch_sql}, 'unixepoch') || '000')"


def create_big_database(path: Path, tasks: int) -> Path:
    """Write `path` with the one run `run-big` of `tasks` tasks (see the module docstring)."""
    t0 = float(int(time.time()) - 2 * 86400 - (tasks // _LANES) // 10)  # over a day ago
    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = OFF")
        conn.executescript(PARSL_TABLES + TASKSCOPE_TABLES)
        conn.execute(
            "INSERT INTO taskscope_schema VALUES (?, ?, ?)",
            (SCHEMA_VERSION, TIMESTAMP_CONVENTION, time.strftime("%Y-%m-%d %H:%M:%S.000000")),
        )
        args = {"run": RUN, "t0": t0}
        conn.execute(
            "CREATE TEMP TABLE ids AS WITH RECURSIVE c(i) AS (SELECT 0 UNION ALL "
            "SELECT i + 1 FROM c WHERE i < ?) SELECT i FROM c",
            (tasks - 1,),
        )
        _write_tasks(conn, args)
        _write_rollups(conn, args)
        _write_run_rows(conn, args, tasks)
        create_indexes(conn)
        conn.commit()
        conn.execute("ANALYZE")
        conn.commit()
    finally:
        conn.close()
    return path


def _events() -> list[tuple[str, str]]:
    """(state name, epoch seconds) SQL of each of a task's five status rows, in order."""
    return [
        ("'pending'", ":t0 + 0.5"),
        ("'launched'", _START),
        ("'running'", _RUNNING),
        ("'running_ended'", _ENDED),
        (_FINAL, _DONE),
    ]


def _write_tasks(conn: sqlite3.Connection, args: dict[str, object]) -> None:
    conn.execute(
        f"""INSERT INTO task SELECT i, :run,
                CASE WHEN i % 4 = 0 THEN '' ELSE CAST(i - 1 AS TEXT) END, {_APP}, '0', NULL,
                '[]', '[]', '', '', '', {_ts(":t0 + 0.5")}, {_ts(_DONE)},
                CASE WHEN {_FAILS} THEN 1 ELSE 0 END, 0.0
            FROM ids""",
        args,
    )
    conn.execute(
        f"""INSERT INTO try SELECT 0, i, :run, '0', {_HOST}, 'htex', {_ts(_START)},
                {_ts(_RUNNING)}, {_ts(_ENDED)},
                CASE WHEN {_FAILS} THEN 'synthetic failure of task ' || i ELSE '' END, ''
            FROM ids""",
        args,
    )
    for name, when in _events():
        conn.execute(f"INSERT INTO status SELECT i, {name}, {_ts(when)}, :run, 0 FROM ids", args)
    conn.execute(
        f"""INSERT INTO resource SELECT 0, i, :run, {_ts(_ENDED)}, 0.0, 1000 + i % 30000, 0.1,
                0, {TRY_S * 0.9}, 0.001, 2.0e8, 5.0e7 + (i % 97) * 1.0e5, 0, 4096, 'zombie',
                CAST(i % 8 AS TEXT), 3, 1
            FROM ids""",
        args,
    )
    exception = "CASE (i / 100) % 4 " + " ".join(
        f"WHEN {k} THEN '{name}'" for k, name in enumerate(EXCEPTIONS)
    )
    conn.execute(
        f"""INSERT INTO taskscope_try_failure SELECT :run, i, 0, {exception} END,
                'synthetic failure of task ' || i,
                'Traceback (most recent call last):' || char(10) || '  File "w.py", line 3' ||
                char(10) || {exception} END || ': synthetic failure of task ' || i, NULL
            FROM ids WHERE {_FAILS}""",
        args,
    )
    conn.execute(
        f"INSERT INTO taskscope_task_state SELECT :run, i, 0, {_FINAL}, {_ts(_DONE)}, NULL "
        "FROM ids",
        args,
    )
    add_task_durations(conn, str(args["run"]))  # as the writer sets them when tasks end


def _write_rollups(conn: sqlite3.Connection, args: dict[str, object]) -> None:
    conn.execute(
        f"""INSERT INTO taskscope_try_run SELECT :run, i, 0, {_WORKER}, {_APP}, {_RUNNING},
                {_ENDED} FROM ids""",
        args,
    )
    # A try lies within one second but for the few that cross a boundary: those count in
    # the second they start (close enough for pages that are read, not checked, here).
    for table, seconds in (("taskscope_occupancy", 1), ("taskscope_occupancy_minute", 60)):
        conn.execute(
            f"""INSERT INTO {table} SELECT run_id, CAST(time_running AS INTEGER) / {seconds},
                    worker, app, SUM(time_ended - time_running), COUNT(*)
                FROM taskscope_try_run WHERE run_id = :run GROUP BY 2, worker, app""",
            args,
        )
    conn.execute(
        """INSERT INTO taskscope_app_run_total SELECT run_id, app,
                SUM(time_ended - time_running), COUNT(*)
            FROM taskscope_try_run WHERE run_id = :run GROUP BY app""",
        args,
    )
    conn.execute(
        "INSERT INTO taskscope_dependent SELECT :run, i - 1, i FROM ids WHERE i % 4 != 0", args
    )
    conn.execute(
        """INSERT INTO taskscope_app_edge SELECT :run, s.task_func_name, t.task_func_name,
                'depends', COUNT(*)
            FROM taskscope_dependent d
            JOIN task s ON s.run_id = :run AND s.task_id = d.task_id
            JOIN task t ON t.run_id = :run AND t.task_id = d.dependent_id
            WHERE d.run_id = :run GROUP BY 2, 3""",
        args,
    )
    # The state flow from the event times themselves: rebuild_state_flow parses every status
    # row's timestamp text (a third of the build at 10^5 tasks).
    for name, when in _events():
        conn.execute(
            f"""INSERT INTO taskscope_state_flow SELECT :run, CAST({when} AS INTEGER), {_APP},
                    {name}, COUNT(*) FROM ids GROUP BY 2, 3, 4""",
            args,
        )
    conn.execute(
        """INSERT INTO taskscope_state_flow_minute SELECT run_id, bucket / 60, app, state,
                SUM(entered) FROM taskscope_state_flow WHERE run_id = :run
            GROUP BY bucket / 60, app, state""",
        args,
    )
    conn.execute(
        """INSERT INTO taskscope_app_total SELECT run_id, app, state, SUM(entered)
            FROM taskscope_state_flow_minute WHERE run_id = :run GROUP BY app, state""",
        args,
    )


def _write_run_rows(conn: sqlite3.Connection, args: dict[str, object], tasks: int) -> None:
    failed = conn.execute(
        "SELECT count(*) FROM taskscope_task_state WHERE run_id = ? AND state = 'failed'", (RUN,)
    ).fetchone()[0]
    last_epoch = conn.execute(f"SELECT MAX({_DONE}) + 0.5 FROM ids", args).fetchone()[0]
    began, ended = _ts(":t0"), _ts(":end")
    times = {**args, "end": last_epoch, "done": tasks - failed, "failed": failed}
    conn.execute(
        f"""INSERT INTO workflow VALUES (:run, 'big', '1.0', {began}, {ended}, 'synthhost',
                'tester', '/tmp/runinfo/run-big', :failed, :done)""",
        times,
    )
    conn.execute(
        f"""INSERT INTO taskscope_run VALUES (:run, 'failed', {ended}, 5.0, 'htex', 4242,
                '3.11.7', '0.1.0', 0)""",
        times,
    )
    conn.execute(
        "INSERT INTO taskscope_run_extra (run_id, launch_dir, longest_try_s) VALUES (?, ?, ?)",
        (RUN, "/tmp/runinfo", TRY_S),
    )
    for h in range(HOSTS):
        for k, moment in enumerate((":t0", ":end")):
            conn.execute(
                f"""INSERT INTO node VALUES (NULL, :run, 'node{h}', 'pool{h}', '0',
                        {WORKERS_PER_HOST}, 17179869184, {1 - k}, {WORKERS_PER_HOST}, '3.11.7',
                        {_ts(moment + " + 0.2")}, {_ts(moment)})""",
                times,
            )
    for name, moment in (("PENDING", ":t0"), ("RUNNING", ":t0 + 0.5")):
        conn.execute(
            f"INSERT INTO block VALUES (:run, 'htex', '0', 'local-1', {_ts(moment)}, '{name}')",
            times,
        )
