"""The app-level graph read from taskscope_app_edge (kept by the writer) is the graph the SQL
over every task's dependencies and joins gives; the writer counts each task's edges once."""

from __future__ import annotations

import shutil
import sqlite3
import tracemalloc
from pathlib import Path

import pytest
from storehelp import workflow_start

import taskscope
from taskscope import join_app, python_app
from taskscope.config import Config
from taskscope.executors import ThreadPoolExecutor
from taskscope.monitoring.monitoring import MonitoringHub
from taskscope.store.app_edges import TaskApps
from taskscope.store.graph_query import APP_EDGE_TABLE, app_graph
from taskscope.store.messages import TaskInfo, TryInfo, WorkflowEnd
from taskscope.store.records import AppGraph
from taskscope.store.synthetic import create_database, standard_runs
from taskscope.store.writer import DatabaseWriter

T0 = 1_700_000_000.0


def graph_both_ways(path: Path, run_id: str, tmp_path: Path) -> tuple[AppGraph, AppGraph]:
    """The app graph from the stored edge counts, and from a copy without them."""
    conn = sqlite3.connect(path)
    try:
        stored = conn.execute(
            f"SELECT COUNT(*) FROM {APP_EDGE_TABLE} WHERE run_id = ?", (run_id,)
        ).fetchone()[0]
        assert stored > 0, "the writer kept no app edges for this run"
        from_table = app_graph(conn, run_id)
    finally:
        conn.close()
    copy = tmp_path / f"without-edges-{path.name}"
    shutil.copy(path, copy)
    conn = sqlite3.connect(copy)
    try:
        conn.execute(f"DELETE FROM {APP_EDGE_TABLE}")
        # As a writer without the edge table leaves it: no per-run totals either (a writer
        # that keeps totals keeps edges, so an empty edge table then means no edges yet).
        conn.execute("DELETE FROM taskscope_app_total")
        conn.commit()
        scanned = app_graph(conn, run_id)
    finally:
        conn.close()
    return from_table, scanned


@pytest.fixture(scope="module")
def synthetic_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return create_database(tmp_path_factory.mktemp("edges") / "synthetic.db", standard_runs())


@pytest.mark.parametrize("run_id", ["run-completed", "run-failed", "run-lost", "run-live"])
def test_synthetic_table_and_scan_give_the_same_app_graph(synthetic_db, run_id, tmp_path):
    from_table, scanned = graph_both_ways(synthetic_db, run_id, tmp_path)
    assert from_table.edges, "the synthetic run has dependencies"
    assert from_table == scanned


def test_database_without_the_table_still_has_app_edges(tmp_path):
    path = create_database(tmp_path / "old.db", standard_runs(), task_state=False)
    conn = sqlite3.connect(path)
    try:
        assert not conn.execute(
            "SELECT 1 FROM sqlite_master WHERE name = ?", (APP_EDGE_TABLE,)
        ).fetchone()
        assert app_graph(conn, "run-completed").edges
    finally:
        conn.close()


@python_app
def start(x):
    return x


@python_app
def double(x):
    return 2 * x


@python_app
def total(*values):
    return sum(values)


@join_app
def fan_out(n):
    return total(*[double(i) for i in range(n)])


def test_monitored_run_table_and_scan_give_the_same_app_graph(tmp_path):
    hub = MonitoringHub(
        logging_endpoint=f"sqlite:///{tmp_path}/monitoring.db", resource_monitoring_interval=0
    )
    config = Config(
        executors=[ThreadPoolExecutor(label="threads", max_threads=2)],
        monitoring=hub,
        run_dir=str(tmp_path / "runinfo"),
        strategy="none",
    )
    with taskscope.load(config) as dfk:
        run_id = dfk.run_id
        firsts = [start(i) for i in range(4)]
        doubled = [double(f) for f in firsts]
        summed = total(*doubled, firsts[0])
        joined = fan_out(3)
        assert summed.result() == 2 * (0 + 1 + 2 + 3) + 0
        assert joined.result() == 2 * (0 + 1 + 2)
    from_table, scanned = graph_both_ways(tmp_path / "monitoring.db", run_id, tmp_path)
    edges = {(e.source, e.target): e.count for e in from_table.edges}
    assert edges[("start", "double")] == 4
    assert edges[("double", "total")] == 4 + 3  # the direct call's four, the join's inner three
    assert edges[("start", "total")] == 1
    assert edges[("total", "fan_out")] == 1  # fan_out joined the total it returned
    assert from_table == scanned


def task(run_id: str, task_id: int, app: str, depends: list[int], **kw) -> TaskInfo:
    return TaskInfo(run_id, task_id, app, False, "htex", T0 + task_id, depends=depends, **kw)


def edge_rows(writer) -> list[tuple]:
    return writer.conn.execute(
        f"SELECT source_app, target_app, kind, count FROM {APP_EDGE_TABLE} ORDER BY 1, 2, 3"
    ).fetchall()


def test_writer_counts_each_tasks_edges_once(writer, run_id):
    writer.write(
        [
            workflow_start(run_id, T0),
            task(run_id, 0, "load", []),
            task(run_id, 1, "load", []),
            task(run_id, 2, "fit", [0, 1], state="pending", timestamp=T0 + 2),
            task(run_id, 2, "fit", [0, 1], time_returned=T0 + 9),  # the same batch
            task(run_id, 3, "gather", []),
            TryInfo(run_id, 3, 0, "htex", joins="2,0"),
        ]
    )
    writer.commit()
    writer.write(  # later batches repeat what is known: nothing more is counted
        [
            task(run_id, 2, "fit", [0, 1], state="exec_done", timestamp=T0 + 10),
            task(run_id, 3, "gather", [], time_returned=T0 + 11),
            TryInfo(run_id, 3, 0, "htex", time_returned=T0 + 11, joins="2,0"),
            task(run_id, 4, "fit", [1, 99]),  # 99 was never seen: no row, no edge
            WorkflowEnd(run_id, T0 + 12, "completed", 3, 0),
        ]
    )
    writer.commit()
    assert edge_rows(writer) == [
        ("fit", "gather", "join", 1),
        ("load", "fit", "depends", 3),
        ("load", "gather", "join", 1),
    ]
    graph = app_graph(writer.conn, run_id)
    assert {(e.source, e.target): e.count for e in graph.edges} == {
        ("fit", "gather"): 1,
        ("load", "fit"): 3,
        ("load", "gather"): 1,
    }


def test_writer_counts_a_replayed_batch_again(writer, run_id):
    """The receiver replays a rejected batch message by message after rolling it back: the
    edges of the replay are counted (the rolled-back batch left no count behind)."""
    writer.write([workflow_start(run_id, T0), task(run_id, 0, "load", [])])
    writer.commit()
    writer.begin()
    writer.conn.execute("SAVEPOINT batch")
    with pytest.raises(TypeError):
        writer.write([task(run_id, 1, "fit", [0]), "not a message"])
    writer.conn.execute("ROLLBACK TO batch")
    writer.conn.execute("RELEASE batch")
    writer.write([task(run_id, 1, "fit", [0])])
    writer.commit()
    assert edge_rows(writer) == [("load", "fit", "depends", 1)]


def test_task_apps_remember_dense_and_stray_ids():
    apps = TaskApps()
    for task_id in range(1000):
        apps.set(task_id, ("load", "fit")[task_id % 2])
    apps.set(10**12, "stray")  # a far id (a foreign message) must not grow the dense array
    apps.set(-3, "negative")
    assert [apps.get(i) for i in (0, 1, 998, 999)] == ["load", "fit", "load", "fit"]
    assert apps.get(1000) is None and apps.get(5000) is None
    assert apps.get(10**12) == "stray" and apps.get(-3) == "negative"


def test_task_apps_cost_a_few_bytes_per_task():
    tracemalloc.start()
    try:
        apps = TaskApps()
        for task_id in range(200_000):
            apps.set(task_id, f"transform{task_id % 1 or ''}")  # a fresh string, as decoded
        used = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert apps.get(199_999) == "transform"
    assert used < 16 * 200_000  # a dict of id -> name took about 130 bytes a task


def test_task_apps_stay_small_whatever_ids_arrive():
    """4,000 ids 65,535 apart (forged messages) once grew the array to 1 GB."""
    tracemalloc.start()
    try:
        apps = TaskApps()
        for i in range(4000):
            apps.set(i * 65_535, "forged")
        for task_id in range(1000):  # the run's own dense ids still go to the array
            apps.set(task_id, "real")
        used = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert used < 2 * 1024 * 1024
    assert apps.get(65_535 * 3999) == "forged" and apps.get(65_535) == "forged"
    assert apps.get(999) == "real" and apps.get(0) == "real"
    assert apps.get(1000) is None


def test_a_restarted_writer_counts_edges_to_tasks_written_before_it(writer, run_id):
    """A writer restarted after a kill (or replaying a killed run's spool) starts from the
    tasks already in the database: a dependent's edge to one of them is counted."""
    writer.write([workflow_start(run_id, T0), task(run_id, 0, "load", [])])
    writer.commit()
    again = DatabaseWriter(writer.conn)
    again.write([task(run_id, 1, "fit", [0]), task(run_id, 0, "load", [])])  # 0 again: once
    again.commit()
    assert edge_rows(again) == [("load", "fit", "depends", 1)]
