"""`taskscope.monitoring.queries.pandas`: Parsl's queries with Parsl's columns and rows, and
taskscope's own DataFrames, equal to what the database holds."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from fixture_paths import PARSL_FIXTURE_DB, PARSL_RUN

pd = pytest.importorskip("pandas")
q = pytest.importorskip("taskscope.monitoring.queries.pandas")

# (function, extra arguments, the columns Parsl's function returns, SQL for its rows)
PARSL = [
    (
        "app_counts_for_workflow",
        (),
        ["task_func_name", "frequency"],
        "SELECT COUNT(DISTINCT task_func_name) FROM task WHERE run_id = ?",
    ),
    ("nodes_for_workflow", (), None, "SELECT COUNT(*) FROM node WHERE run_id = ?"),
    ("resources_for_workflow", (), None, "SELECT COUNT(*) FROM resource WHERE run_id = ?"),
    (
        "resources_for_task",
        (1,),
        None,
        "SELECT COUNT(*) FROM resource WHERE run_id = ? AND task_id = 1",
    ),
    (
        "status_for_workflow",
        (),
        ["run_id", "task_id", "task_status_name", "timestamp"],
        "SELECT COUNT(*) FROM status WHERE run_id = ?",
    ),
    (
        "completion_times_for_workflow",
        (),
        ["task_id", "task_func_name", "task_time_returned"],
        "SELECT COUNT(*) FROM task WHERE run_id = ?",
    ),
    ("tasks_for_workflow", (), None, "SELECT COUNT(*) FROM task WHERE run_id = ?"),
    (
        "tries_for_workflow",
        (),
        [
            "task_id",
            "task_func_name",
            "task_time_returned",
            "task_try_time_running",
            "task_try_time_returned",
        ],
        "SELECT COUNT(*) FROM try WHERE run_id = ?",
    ),
]


@pytest.mark.parametrize("name,extra,columns,count_sql", PARSL, ids=[p[0] for p in PARSL])
def test_parsl_queries_keep_parsl_s_columns_and_rows(name, extra, columns, count_sql):
    conn = sqlite3.connect(PARSL_FIXTURE_DB)
    frame = getattr(q, name)(PARSL_RUN, *extra, conn)
    expected_rows = conn.execute(count_sql, (PARSL_RUN,)).fetchone()[0]
    table = {"nodes": "node", "resources": "resource", "tasks": "task"}.get(name.split("_")[0])
    if columns is None:  # SELECT *: the table's own columns
        columns = [r[1] for r in conn.execute(f"PRAGMA table_info({table})")]
    conn.close()
    assert list(frame.columns) == columns
    assert len(frame) == expected_rows > 0


def test_app_counts_and_values():
    counts = q.app_counts_for_workflow(PARSL_RUN, str(PARSL_FIXTURE_DB))
    assert dict(zip(counts.task_func_name, counts.frequency, strict=True))["always_fail"] == 4
    assert counts.frequency.sum() == 275
    # Parsl returns timestamps as the stored text; so do these
    times = q.completion_times_for_workflow(PARSL_RUN, sqlite3.connect(PARSL_FIXTURE_DB))
    assert isinstance(times.task_time_returned.dropna().iloc[0], str)


def test_a_quote_in_the_run_id_is_a_value_not_sql():
    frame = q.tasks_for_workflow("x' OR '1'='1", sqlite3.connect(PARSL_FIXTURE_DB))
    assert len(frame) == 0


def test_runs_and_task_states(taskscope_db: Path):
    runs = q.runs(taskscope_db)
    conn = sqlite3.connect(taskscope_db)
    assert sorted(runs.run_id) == sorted(r for (r,) in conn.execute("SELECT run_id FROM workflow"))
    assert dict(zip(runs.run_id, runs.status, strict=True))["run-lost"] == "lost"
    assert pd.api.types.is_datetime64_any_dtype(runs.time_began)
    states = q.task_states("run-failed", conn)
    truth = dict(
        conn.execute(
            "SELECT state, COUNT(*) FROM taskscope_task_state "
            "WHERE run_id = 'run-failed' GROUP BY state"
        )
    )
    assert states.state.value_counts().to_dict() == truth
    depends = conn.execute(
        "SELECT task_depends FROM task WHERE run_id = 'run-failed' AND task_id = 7"
    ).fetchone()[0]
    conn.close()
    row = states.set_index("task_id").loc[7]
    assert row.depends == [int(d) for d in depends.split(",")]
    assert pd.api.types.is_datetime64_any_dtype(states.time_invoked)


def test_app_summary_failures_and_usage(taskscope_db: Path):
    apps = q.app_summary("run-failed", taskscope_db)
    conn = sqlite3.connect(taskscope_db)
    tasks = conn.execute("SELECT COUNT(*) FROM task WHERE run_id = 'run-failed'").fetchone()[0]
    failed_tries = conn.execute(
        "SELECT COUNT(*) FROM taskscope_try_failure WHERE run_id = 'run-failed'"
    ).fetchone()[0]
    conn.close()
    assert apps.tasks.sum() == tasks
    failures = q.failures("run-failed", taskscope_db)
    assert len(failures) == failed_tries and set(failures.exception_type) == {"RuntimeError"}
    usage = q.usage("run-completed", taskscope_db, buckets=40)
    assert len(usage) == 40 and pd.api.types.is_datetime64_any_dtype(usage.index)
    assert 0 < usage.workers_busy.max() <= usage.workers.iloc[0] + 1e-6


def test_worker_tries_on_parsl_and_taskscope(taskscope_db: Path):
    parsl = q.worker_tries(PARSL_RUN, PARSL_FIXTURE_DB)
    conn = sqlite3.connect(PARSL_FIXTURE_DB)
    ran = conn.execute(
        "SELECT COUNT(*) FROM try WHERE run_id = ? AND task_try_time_running IS NOT NULL",
        (PARSL_RUN,),
    ).fetchone()[0]
    conn.close()
    assert len(parsl) == ran and (parsl.run_s.dropna() >= 0).all()
    assert parsl.worker.dropna().str.startswith("pid ").all()
    synthetic = q.worker_tries("run-completed", taskscope_db)
    assert len(synthetic) > 0 and list(synthetic.columns)[:4] == [
        "task_id",
        "try_id",
        "app",
        "worker",
    ]


def test_analysis_frames():
    groups = q.failure_groups(PARSL_RUN, PARSL_FIXTURE_DB)
    assert "dependency" in set(groups.cause) and groups["count"].sum() > 0
    path = q.critical_path(PARSL_RUN, PARSL_FIXTURE_DB)
    assert len(path) > 0 and path.attrs["makespan_s"] > 0
    assert path.total_s.sum() == pytest.approx(path.attrs["makespan_s"], rel=0.05)
    assert list(q.stragglers(PARSL_RUN, PARSL_FIXTURE_DB).columns)[:3] == [
        "task_id",
        "try_id",
        "app",
    ]


def test_not_a_connection_is_a_clear_error():
    with pytest.raises(TypeError, match="sqlite3 connection or a database path"):
        q.runs(object())
