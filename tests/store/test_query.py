"""The query layer on Parsl's fixture database and on synthetic taskscope databases."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from fixture_paths import PARSL_FIXTURE_DB, PARSL_RUN

from taskscope.store import query
from taskscope.store.readonly import DatabaseNotFound, locate_database, open_readonly

PARSL_FIXTURE = PARSL_FIXTURE_DB


@pytest.fixture
def parsl(parsl_db: Path):
    conn = open_readonly(parsl_db)
    yield conn
    conn.close()


@pytest.fixture
def ts(taskscope_db: Path):
    conn = open_readonly(taskscope_db)
    yield conn
    conn.close()


def test_parsl_database_is_local_time_and_not_taskscope(parsl):
    info = query.describe_database(parsl)
    assert not info.is_taskscope
    assert info.timestamp_convention == "local"


def test_parsl_run_listed_with_counts_by_final_state(parsl):
    page = query.list_runs(parsl)
    assert page.total == 1
    run = page.items[0]
    assert run.run_id == PARSL_RUN
    assert run.workflow_name == "diamond-sample"
    assert run.task_count == 275
    assert run.state_counts == {"exec_done": 260, "memo_done": 5, "failed": 4, "dep_fail": 6}
    assert run.status == "failed"  # it ended, and some tasks failed
    assert 19 < run.duration_s < 21


def test_parsl_run_summary(parsl):
    summary = query.run_summary(parsl, PARSL_RUN)
    assert summary.try_count == 292
    assert summary.retry_count == 17
    assert "htex_local" in summary.executors
    d = summary.duration
    assert d.count == 275 and d.minimum <= d.median <= d.maximum
    assert query.run_summary(parsl, "no-such-run") is None


def test_parsl_app_summary_counts_add_up(parsl):
    apps = {a.app: a for a in query.app_summary(parsl, PARSL_RUN)}
    assert sum(a.tasks for a in apps.values()) == 275
    assert apps["always_fail"].failed == 4 and apps["always_fail"].tries == 12
    assert apps["memo_square"].completed == 10
    assert apps["cpu_burn"].mean_exec_s > 2.5  # burns ~3 s of CPU each


def test_tasks_filtered_and_paged(parsl):
    first = query.list_tasks(parsl, PARSL_RUN, limit=10)
    second = query.list_tasks(parsl, PARSL_RUN, limit=10, offset=10)
    assert first.total == 275 and len(first.items) == 10
    assert [t.task_id for t in first.items] == list(range(10))
    assert second.items[0].task_id == 10
    failed = query.list_tasks(parsl, PARSL_RUN, state="failed")
    assert failed.total == 4 and all(t.app == "always_fail" for t in failed.items)
    joins = query.list_tasks(parsl, PARSL_RUN, app="join", state="dep_fail")
    assert joins.total == 4
    slowest = query.list_tasks(parsl, PARSL_RUN, sort="duration", descending=True, limit=1)
    assert slowest.items[0].duration_s >= first.items[0].duration_s


def test_task_detail_with_tries_history_and_dependents(parsl):
    task = query.task_detail(parsl, PARSL_RUN, 1)
    assert task.app == "always_fail" and task.state == "failed"
    assert task.depends == [0] and task.dependents == [3]
    assert [t.try_id for t in task.tries] == [0, 1, 2]
    assert "deliberate failure" in task.tries[0].fail_history
    states = [e.state for e in task.history]
    assert states[0] == "pending" and states[-1] == "failed"
    assert states.count("fail_retryable") == 2
    assert query.task_detail(parsl, PARSL_RUN, 10**6) is None


def test_join_task_shows_joined_tasks(parsl):
    fan_in = query.task_detail(parsl, PARSL_RUN, 269)
    assert fan_in.joins == [270, 271, 272, 273, 274]
    assert 269 in query.task_detail(parsl, PARSL_RUN, 270).dependents


def test_state_history_in_time_order(parsl):
    history = query.state_history(parsl, PARSL_RUN, 0)
    assert [e.state for e in history] == [
        "pending",
        "launched",
        "running",
        "running_ended",
        "exec_done",
    ]
    assert [e.timestamp for e in history] == sorted(e.timestamp for e in history)


def test_resource_series_and_run_usage(parsl):
    samples = query.resource_series(parsl, PARSL_RUN, 5)
    assert samples and samples[0].memory_resident > 1e8
    usage = query.run_usage(parsl, PARSL_RUN, buckets=40)
    assert len(usage.times) == len(usage.cpu_cores) == len(usage.workers_busy) == 40
    # capacity counted once per node, not once per node-table row (561 rows here)
    assert usage.capacity.cpus == 2 and usage.capacity.workers == 2 and usage.capacity.nodes == 1
    assert max(usage.workers_busy) <= 2.0 + 1e-6
    assert max(usage.cpu_cores) > 1.0  # the cpu_burn tasks keep both cores busy


def test_app_distributions(parsl):
    dists = {d.app: d for d in query.app_distributions(parsl, PARSL_RUN)}
    burn = dists["cpu_burn"]
    assert burn.duration_s.count == 4 and 2.5 < burn.duration_s.median < 4
    assert burn.cpu_time_s.median > 2
    box = dists["source"].peak_memory_bytes
    assert box.minimum <= box.q1 <= box.median <= box.q3 <= box.maximum


def test_graphs(parsl):
    graph = query.task_graph(parsl, PARSL_RUN)
    assert len(graph.nodes) == 275
    assert any(e.kind == "joins" and e.target == 269 for e in graph.edges)
    part = query.task_graph(parsl, PARSL_RUN, app="join", limit=10)
    assert sum(1 for n in part.nodes if n.app == "join") == 10
    apps = query.app_graph(parsl, PARSL_RUN)
    edges = {(e.source, e.target): e.count for e in apps.edges}
    assert edges[("left", "join")] == 56 and edges[("source", "fan_in")] == 5


def test_timeline_pages(parsl):
    page = query.timeline(parsl, PARSL_RUN, limit=20, offset=20)
    assert page.total == 275 and page.items[0].task_id == 20
    assert all(seg.start <= seg.end for t in page.items for seg in t.segments)


def test_taskscope_run_statuses(ts):
    statuses = {r.run_id: r.status for r in query.list_runs(ts).items}
    assert statuses == {
        "run-completed": "completed",
        "run-failed": "failed",
        "run-lost": "lost",
        "run-live": "running",
        "run-noresources": statuses["run-noresources"],
    }
    assert query.describe_database(ts).timestamp_convention == "utc"


def test_taskscope_failure_records(ts):
    failed = query.list_tasks(ts, "run-failed", state="failed")
    assert failed.total >= 1
    task = query.task_detail(ts, "run-failed", failed.items[0].task_id)
    failure = task.tries[-1].failure
    assert failure.exception_type == "RuntimeError" and "Traceback" in failure.traceback


def test_run_without_resources(ts):
    usage = query.run_usage(ts, "run-noresources")
    assert usage.sample_count == 0 and max(usage.workers_busy) > 0
    assert all(d.peak_memory_bytes is None for d in query.app_distributions(ts, "run-noresources"))


def test_runs_of_one_workflow_and_sorting(ts):
    pipeline = query.list_runs(ts, workflow_name="pipeline")
    assert {r.run_id for r in pipeline.items} == {"run-completed", "run-failed"}
    by_name = query.list_runs(ts, sort="workflow_name", descending=False)
    names = [r.workflow_name for r in by_name.items]
    assert names == sorted(names)
    assert len(query.list_runs(ts, limit=2).items) == 2


def test_empty_database(empty_db, blank_file_db):
    for path in (empty_db, blank_file_db):
        conn = open_readonly(path)
        assert query.list_runs(conn).total == 0
        assert query.run_summary(conn, "x") is None
        assert query.list_tasks(conn, "x").total == 0
        assert query.task_graph(conn, "x").nodes == []
        conn.close()


def test_readonly_never_creates_or_writes(tmp_path: Path, parsl_db: Path):
    with pytest.raises(DatabaseNotFound):
        open_readonly(tmp_path / "missing.db")
    assert not (tmp_path / "missing.db").exists()
    conn = open_readonly(parsl_db)
    with pytest.raises(sqlite3.OperationalError):
        conn.execute("DELETE FROM task")
    conn.close()


def test_locate_database_forms(tmp_path: Path, parsl_db: Path):
    assert (
        locate_database(f"sqlite:///{parsl_db}", tmp_path).path == parsl_db
    )  # 4 slashes: absolute
    (tmp_path / "runinfo").mkdir()
    (tmp_path / "runinfo" / "monitoring.db").write_bytes(parsl_db.read_bytes())
    found = locate_database(None, tmp_path)
    assert found.path == tmp_path / "runinfo" / "monitoring.db" and "runinfo" in found.how
    (tmp_path / "monitoring.db").write_bytes(parsl_db.read_bytes())
    assert locate_database(None, tmp_path).path == tmp_path / "monitoring.db"
    assert locate_database("sqlite:///monitoring.db", tmp_path).path == tmp_path / "monitoring.db"
    with pytest.raises(DatabaseNotFound):
        locate_database("nope.db", tmp_path)


def test_neighbourhood_of_one_task(parsl):
    one_level = query.task_neighbourhood(parsl, PARSL_RUN, 3, depth=1)
    assert sorted(n.task_id for n in one_level.nodes) == [1, 2, 3, 4]
    assert {(e.source, e.target) for e in one_level.edges} == {(1, 3), (2, 3), (3, 4)}
    deeper = query.task_neighbourhood(parsl, PARSL_RUN, 3, depth=3)
    assert sorted(n.task_id for n in deeper.nodes) == [0, 1, 2, 3, 4]
    joined = query.task_neighbourhood(parsl, PARSL_RUN, 269, depth=1)
    assert {e.source for e in joined.edges if e.kind == "joins"} == {270, 271, 272, 273, 274}
    # a join app's inner task finds the join app among its descendants
    inner = query.task_neighbourhood(parsl, PARSL_RUN, 272, depth=1)
    assert 269 in {n.task_id for n in inner.nodes}
    bounded = query.task_neighbourhood(parsl, PARSL_RUN, 269, depth=1, limit=3)
    assert len(bounded.nodes) == 3 and 269 in {n.task_id for n in bounded.nodes}
    assert query.task_neighbourhood(parsl, PARSL_RUN, 99999) is None


def test_a_join_of_thousands_draws_the_edges_of_the_tasks_shown():
    """One task depending on 5,000: its graph part holds it and the first of its dependencies
    the limit allows, an edge from each, and a junk entry in its list does not hide the rest."""
    from taskscope.store.schema import PARSL_TABLES

    conn = sqlite3.connect(":memory:")
    conn.executescript(PARSL_TABLES)
    rows = [(i, "r", "", "leaf") for i in range(5000)]
    rows.append((5000, "r", ",".join(map(str, range(5000))), "join"))
    rows.append((5001, "r", "1, 2,,x,3", "join"))  # hand-edited or damaged
    conn.executemany(
        "INSERT INTO task (task_id, run_id, task_depends, task_func_name, task_memoize, "
        "task_fail_count, task_fail_cost) VALUES (?, ?, ?, ?, 'False', 0, 0)",
        rows,
    )
    graph = query.task_graph(conn, "r", app="join", limit=10)
    shown = sorted(n.task_id for n in graph.nodes)
    # 2 join tasks; up to 2 x limit nodes in all, so the 18 lowest of their dependencies.
    assert shown == list(range(18)) + [5000, 5001]
    edges = {(e.source, e.target) for e in graph.edges}
    assert edges == {(i, 5000) for i in range(18)} | {(1, 5001), (2, 5001), (3, 5001)}
    assert all(e.kind == "depends" for e in graph.edges)
