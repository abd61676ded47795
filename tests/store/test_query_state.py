"""Task states from taskscope_task_state and from the status history give the same answers;
bounded samples stay close to the exact figures; usage buckets are exact time averages."""

from __future__ import annotations

import sqlite3
from datetime import datetime
from pathlib import Path

import pytest

from taskscope.store import query, resource_query
from taskscope.store.readonly import open_readonly
from taskscope.store.records import AppStats
from taskscope.store.synthetic import SyntheticRun, create_database, standard_runs
from taskscope.store.task_state import state_source

RUNS = ["run-completed", "run-failed", "run-lost", "run-live", "run-noresources"]


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory):
    """The same runs written with and without taskscope_task_state."""
    folder = tmp_path_factory.mktemp("state-pair")
    with_table = open_readonly(create_database(folder / "with.db", standard_runs()))
    without = open_readonly(
        create_database(folder / "without.db", standard_runs(), task_state=False)
    )
    yield with_table, without
    with_table.close()
    without.close()


def test_each_database_uses_the_source_it_has(pair):
    with_table, without = pair
    info = query.describe_database(with_table)
    assert state_source(with_table, info, "run-failed").from_table
    assert not state_source(with_table, info, "no-such-run").from_table  # no rows: fallback
    assert not state_source(without, query.describe_database(without), "run-failed").from_table


def counts_of(app: AppStats) -> tuple:
    """Everything but the means (the two databases' timestamps differ by float rounding)."""
    return (app.app, app.tasks, app.completed, app.failed, app.unfinished, app.tries)


@pytest.mark.parametrize("run_id", RUNS)
def test_state_counts_and_app_summary_agree(pair, run_id: str):
    with_table, without = pair
    counts = query.state_counts(with_table, run_id)
    assert counts == query.state_counts(without, run_id)
    assert sum(counts.values()) == query.get_run(with_table, run_id).task_count
    apps = query.app_summary(with_table, run_id)
    assert [counts_of(a) for a in apps] == [
        counts_of(a) for a in query.app_summary(without, run_id)
    ]
    assert sum(a.failed for a in apps) == counts.get("failed", 0) + counts.get("dep_fail", 0)


@pytest.mark.parametrize("run_id", ["run-failed", "run-live"])
def test_state_filters_agree(pair, run_id: str):
    with_table, without = pair
    for state in ("exec_done", "failed", "dep_fail", "running", "launched", "pending"):
        for app in (None, "transform"):
            a = query.list_tasks(with_table, run_id, state=state, app=app, limit=500)
            b = query.list_tasks(without, run_id, state=state, app=app, limit=500)
            assert [(t.task_id, t.state) for t in a.items] == [
                (t.task_id, t.state) for t in b.items
            ], (state, app)
            assert a.total == b.total
            assert all(row.state == state for row in a.items)


def test_graphs_agree(pair):
    with_table, without = pair
    for run_id in ("run-failed", "run-live"):
        assert query.app_graph(with_table, run_id) == query.app_graph(without, run_id)
        a, b = query.task_graph(with_table, run_id), query.task_graph(without, run_id)
        assert [(n.task_id, n.state) for n in a.nodes] == [(n.task_id, n.state) for n in b.nodes]
        assert a.edges == b.edges


def test_late_page_is_the_tail_in_order(pair):
    with_table, _ = pair
    everything = query.list_tasks(with_table, "run-failed", app="transform", limit=1000)
    tail = query.list_tasks(
        with_table, "run-failed", app="transform", limit=7, offset=everything.total - 7
    )
    assert [t.task_id for t in tail.items] == [t.task_id for t in everything.items[-7:]]
    slowest = query.list_tasks(with_table, "run-failed", sort="duration", descending=True, limit=5)
    durations = [t.duration_s or 0 for t in slowest.items]
    assert durations == sorted(durations, reverse=True)


def test_samples_stay_close_to_exact(pair, monkeypatch: pytest.MonkeyPatch):
    with_table, _ = pair
    run_id = "run-failed"  # 150 tasks
    exact_apps = {a.app: a for a in query.app_summary(with_table, run_id)}
    exact_durations = query.duration_stats(with_table, run_id)
    monkeypatch.setattr(query, "APP_SAMPLE_TASKS", 50)
    monkeypatch.setattr(query, "SMALL_APP_TASKS", 10)
    monkeypatch.setattr(query, "MEDIAN_SAMPLE_TASKS", 50)
    monkeypatch.setattr(resource_query, "DIST_SAMPLE_TASKS", 50)
    sampled = {a.app: a for a in query.app_summary(with_table, run_id)}
    for app, exact in exact_apps.items():
        assert sampled[app].tasks == exact.tasks and sampled[app].failed == exact.failed
    tiny = sampled["join_all"]  # one task: measured exactly, never a sample of nothing
    assert tiny.sample_fraction == 1.0 and tiny == exact_apps["join_all"]
    big = sampled["generate"]
    assert big.sample_fraction < 1
    assert big.mean_duration_s == pytest.approx(exact_apps["generate"].mean_duration_s, rel=0.15)
    assert big.tries == pytest.approx(exact_apps["generate"].tries, rel=0.15)
    durations = query.duration_stats(with_table, run_id)
    assert durations.median_fraction < 1
    assert (durations.count, durations.maximum) == (exact_durations.count, exact_durations.maximum)
    assert durations.minimum <= durations.median <= durations.maximum
    monkeypatch.setattr(resource_query, "SMALL_APP_TASKS", 0)
    dists = query.app_distributions(with_table, run_id)
    assert dists and all(d.sample_fraction < 1 for d in dists)


def _seconds(text: str, start: datetime) -> float:
    return (datetime.strptime(text, "%Y-%m-%d %H:%M:%S.%f") - start).total_seconds()


def test_workers_busy_is_the_exact_time_average(tmp_path: Path):
    """Each bucket's value equals the overlap of every try with the bucket, computed here by
    brute force in Python."""
    db = create_database(
        tmp_path / "m.db", [SyntheticRun("r", tasks=60, workers=3, task_seconds=7.0, seed=9)]
    )
    conn = open_readonly(db)
    usage = query.run_usage(conn, "r", buckets=25)
    began, ended = resource_query._span(conn, "r")
    start = datetime.strptime(began, "%Y-%m-%d %H:%M:%S.%f")
    width = usage.bucket_seconds
    tries = conn.execute(
        "SELECT task_try_time_running, COALESCE(task_try_time_returned, ?) FROM try "
        "WHERE run_id = 'r' AND task_try_time_running IS NOT NULL",
        (ended,),
    ).fetchall()
    for b, value in enumerate(usage.workers_busy):
        lo, hi = b * width, (b + 1) * width
        expected = (
            sum(
                max(0.0, min(hi, _seconds(e, start)) - max(lo, _seconds(s, start)))
                for s, e in tries
            )
            / width
        )
        # SQLite's julianday() keeps milliseconds: a few ms per try over a ~6 s bucket
        assert value == pytest.approx(expected, abs=0.01), b
    conn.close()


def test_sampled_usage_is_scaled_to_the_whole_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    db = create_database(
        tmp_path / "m.db", [SyntheticRun("r", tasks=400, workers=8, samples_per_try=3, seed=3)]
    )
    conn = open_readonly(db)
    exact = query.run_usage(conn, "r", buckets=10)
    monkeypatch.setattr(resource_query, "USAGE_SAMPLE_ROWS", 200)
    sampled = query.run_usage(conn, "r", buckets=10)
    assert sampled.sample_fraction < 0.5 and exact.sample_fraction == 1.0
    total_exact, total_sampled = sum(exact.memory_bytes), sum(sampled.memory_bytes)
    assert total_sampled == pytest.approx(total_exact, rel=0.35)
    assert sampled.workers_busy == exact.workers_busy  # never sampled
    conn.close()


def test_run_without_status_rows_counts_its_tasks_as_pending(tmp_path: Path):
    db = create_database(tmp_path / "m.db", [SyntheticRun("r", tasks=30, seed=2)])
    raw = sqlite3.connect(db)
    raw.execute("DELETE FROM status WHERE task_id >= 20")
    raw.execute("DELETE FROM taskscope_task_state WHERE task_id >= 20")
    # as an older taskscope database would be: no per-app totals kept by the writer
    raw.execute("DELETE FROM taskscope_app_total")
    raw.commit()
    raw.close()
    conn = open_readonly(db)
    assert query.state_counts(conn, "r").get("pending", 0) >= 10
    pending = query.list_tasks(conn, "r", state="pending", limit=100)
    assert {t.task_id for t in pending.items} >= set(range(20, 30))
    conn.close()


def test_sampled_distributions_keep_small_apps_exact(pair, monkeypatch: pytest.MonkeyPatch):
    with_table, _ = pair
    exact = {d.app: d for d in query.app_distributions(with_table, "run-failed")}
    monkeypatch.setattr(resource_query, "DIST_SAMPLE_TASKS", 50)
    monkeypatch.setattr(resource_query, "SMALL_APP_TASKS", 10)
    sampled = {d.app: d for d in query.app_distributions(with_table, "run-failed")}
    assert set(sampled) == set(exact)  # no app vanishes for lack of sampled tasks
    assert sampled["join_all"] == exact["join_all"] and sampled["join_all"].sample_fraction == 1
    generate = sampled["generate"]
    assert generate.sample_fraction < 1
    assert generate.duration_s.count < exact["generate"].duration_s.count
    assert generate.duration_s.median == pytest.approx(exact["generate"].duration_s.median, rel=0.3)


def test_fallback_for_a_run_that_is_most_of_the_database(tmp_path: Path):
    """Such a run takes the covering scan of status's primary key; it must agree too."""
    runs = [
        SyntheticRun("big", tasks=1200, fail_fraction=0.05, seed=7),
        SyntheticRun("small", tasks=50, seed=8),
    ]
    with_table = open_readonly(create_database(tmp_path / "with.db", runs))
    without = open_readonly(create_database(tmp_path / "without.db", runs, task_state=False))
    info = query.describe_database(without)
    assert state_source(without, info, "big").covering_index
    assert not state_source(without, info, "small").covering_index
    for run_id in ("big", "small"):
        assert query.state_counts(with_table, run_id) == query.state_counts(without, run_id)
        assert query.app_graph(with_table, run_id) == query.app_graph(without, run_id)
        for state in ("failed", "dep_fail", "exec_done"):
            a = query.list_tasks(with_table, run_id, state=state, limit=1000)
            b = query.list_tasks(without, run_id, state=state, limit=1000)
            assert [t.task_id for t in a.items] == [
                t.task_id for t in b.items
            ] and a.total == b.total
    with_table.close()
    without.close()


def test_sample_probed_through_the_index_is_the_sample_scanned(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """Listing the sampled ids and probing taskscope's (run_id, task_id) indexes reads the
    same rows as testing every row (the path for Parsl's databases, which lack them)."""
    db = create_database(
        tmp_path / "m.db", [SyntheticRun("r", tasks=600, workers=8, samples_per_try=3, seed=5)]
    )
    raw = sqlite3.connect(db)
    for flow in ("taskscope_state_flow", "taskscope_state_flow_minute"):
        raw.execute(f"DROP TABLE {flow}")  # in flight is then read from a sample of tries
    raw.commit()
    raw.close()
    monkeypatch.setattr(resource_query, "USAGE_SAMPLE_ROWS", 300)
    monkeypatch.setattr(resource_query, "DIST_SAMPLE_TASKS", 60)
    monkeypatch.setattr(resource_query, "SMALL_APP_TASKS", 0)

    def figures() -> tuple[object, object]:
        conn = open_readonly(db)
        try:
            usage = query.run_usage(conn, "r", buckets=20)
            return usage, query.app_distributions(conn, "r")
        finally:
            conn.close()

    probed_usage, probed_dists = figures()
    assert probed_usage is not None and probed_usage.sample_fraction < 1
    assert probed_usage.in_flight_fraction < 1 and sum(probed_usage.in_flight) > 0
    assert probed_dists and all(d.sample_fraction < 1 for d in probed_dists)
    raw = sqlite3.connect(db)
    raw.execute("DROP INDEX ix_resource_run_task")
    raw.execute("DROP INDEX ix_try_run_task")
    raw.commit()
    raw.close()
    scanned_usage, scanned_dists = figures()
    assert scanned_usage == probed_usage
    assert scanned_dists == probed_dists


def test_a_big_runs_sample_count_is_estimated_close_to_the_count(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    db = create_database(
        tmp_path / "m.db", [SyntheticRun("r", tasks=2000, samples_per_try=3, seed=7)]
    )
    conn = open_readonly(db)
    counted = query.resource_sample_count(conn, "r")
    assert resource_query._resource_rows(conn, "r") == counted  # small: counted exactly
    monkeypatch.setattr(resource_query, "EXACT_COUNT_ROWS", 0)
    monkeypatch.setattr(resource_query, "PILOT_TASKS", 200)
    estimated = resource_query._resource_rows(conn, "r")
    assert estimated != counted and estimated == pytest.approx(counted, rel=0.15)
    conn.close()


def test_sparse_task_ids_are_sampled_without_listing_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """Ids up to 10^15 on a small run: the sample is read by the row test, not by listing
    a billion candidate ids, and the figures are those of the listed sample's rule."""
    db = create_database(
        tmp_path / "m.db", [SyntheticRun("r", tasks=300, samples_per_try=2, seed=4)]
    )
    raw = sqlite3.connect(db)
    raw.execute("UPDATE resource SET task_id = 1000000000000000 WHERE task_id = 299")
    raw.commit()
    raw.close()
    monkeypatch.setattr(resource_query, "USAGE_SAMPLE_ROWS", 100)
    conn = open_readonly(db)
    usage = query.run_usage(conn, "r", buckets=10, parts=("samples",))
    assert usage is not None and 0 < usage.sample_fraction < 1
    assert sum(usage.memory_bytes) > 0
    conn.close()
