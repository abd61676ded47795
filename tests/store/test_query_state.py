"""Task states from taskscope_task_state and from the status history give the same answers;
bounded samples stay close to the exact figures; usage buckets are exact time averages."""

from __future__ import annotations

import calendar
import math
import sqlite3
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from earlier_layout import rewrite_in_earlier_layout

from taskscope.store import (
    graph_query,
    id_pages,
    query,
    resource_query,
    timeline_query,
    worker_query,
)
from taskscope.store.key_order import walk_task_key_in_id_order
from taskscope.store.readonly import open_readonly
from taskscope.store.records import AppStats
from taskscope.store.synthetic import SyntheticRun, create_database, standard_runs
from taskscope.store.task_state import state_source
from taskscope.store.timestamps import parse_timestamp

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


def edges_of(graph) -> list[tuple[int, int, str]]:
    return sorted((e.source, e.target, e.kind) for e in graph.edges)


@pytest.mark.parametrize("run_id", ["run-failed", "run-live"])
def test_neighbourhoods_from_the_dependents_table_are_the_scanned_ones(pair, run_id: str):
    """Descendants come from the writer's taskscope_dependent (probes) on one database and
    from scanning later tasks' dependency lists and the run's joins on the other."""
    with_table, without = pair
    assert query.get_run(with_table, run_id).task_count == query.get_run(without, run_id).task_count
    last = query.get_run(with_table, run_id).task_count - 1  # the join app
    for task_id in [*range(0, last, 7), last, last - 2]:
        for depth in (1, 3):
            a = query.task_neighbourhood(with_table, run_id, task_id, depth=depth)
            b = query.task_neighbourhood(without, run_id, task_id, depth=depth)
            assert [(n.task_id, n.state) for n in a.nodes] == [
                (n.task_id, n.state) for n in b.nodes
            ], (task_id, depth)
            assert edges_of(a) == edges_of(b), (task_id, depth)
            assert a.total_tasks == b.total_tasks
    if run_id == "run-failed":  # (the live run's join app has not started)
        joined = query.task_neighbourhood(with_table, run_id, last - 2, depth=1)
        assert (last - 2, last, "joins") in edges_of(joined)


@pytest.mark.parametrize("walk_rows", [0, 10**9])
def test_one_apps_task_graph_is_its_first_tasks_by_either_read(
    pair, monkeypatch: pytest.MonkeyPatch, walk_rows: int
):
    """Walking the task key in id order (a common app) and sorting the app's own rows (a
    rare one) choose the same first tasks, on both databases."""
    monkeypatch.setattr(graph_query, "KEY_WALK_ROWS", walk_rows)
    with_table, without = pair
    for app in ("transform", "summarize", "join_all"):
        for first in (None, 41):
            a = query.task_graph(with_table, "run-failed", app=app, first_task=first, limit=9)
            b = query.task_graph(without, "run-failed", app=app, first_task=first, limit=9)
            assert [(n.task_id, n.app, n.state) for n in a.nodes] == [
                (n.task_id, n.app, n.state) for n in b.nodes
            ]
            assert a.edges == b.edges
            chosen = [n.task_id for n in a.nodes if n.app == app][:9]
            every = [
                t.task_id
                for t in query.list_tasks(with_table, "run-failed", app=app, limit=500).items
                if first is None or t.task_id >= first
            ]
            assert chosen == every[:9]


@pytest.mark.parametrize("per_task", [0, 1, 2, 10**6])
def test_a_task_graphs_first_tasks_walked_in_id_order_are_the_sorted_ones(
    pair, monkeypatch: pytest.MonkeyPatch, per_task: int
):
    """The run's first tasks (from a given id on) found by walking the task key among the
    other runs' tasks, with budgets from none (always sorted) through tight (the walk gives
    up, or reaches the table's end) to unbounded, are the tasks sorting the run's own ids
    gives, on both databases."""
    monkeypatch.setattr(graph_query, "ID_WALK_ROWS_PER_TASK", per_task)
    for conn in pair:
        assert walk_task_key_in_id_order(conn)  # Parsl's task key: the walk's
        for run_id in RUNS:
            total = graph_query._run_task_total(conn, run_id)
            for first in (None, 0, 7, total // 2, total - 3, total + 5):
                for limit in (1, 9, total - 1):
                    truth = [
                        row[0]
                        for row in conn.execute(
                            "SELECT task_id FROM task WHERE run_id = ? AND task_id >= ? "
                            "ORDER BY task_id LIMIT ?",
                            (run_id, first or 0, limit),
                        )
                    ]
                    graph = query.task_graph(conn, run_id, first_task=first, limit=limit)
                    chosen = sorted(n.task_id for n in graph.nodes if n.task_id in set(truth))
                    assert chosen == truth, (run_id, first, limit)
                    ids = graph_query._first_task_ids(conn, run_id, None, first, limit, total)
                    assert ids == truth, (run_id, first, limit)


@pytest.mark.parametrize("walk_rows", [0, 10**9])
def test_pages_walked_in_id_order_are_the_sorted_pages(
    pair, monkeypatch: pytest.MonkeyPatch, walk_rows: int
):
    """Pages read by walking an index in id order, from either end, with counts from the
    writer's totals (the database with taskscope_task_state) are the pages that sorting the
    matching tasks gives (the one without): same ids, same order, same total. (These runs
    are small: with walks allowed, so is the walk of a small run's whole list.)"""
    monkeypatch.setattr(id_pages, "WALK_ROWS", walk_rows)
    monkeypatch.setattr(id_pages, "SORT_TASKS", 0 if walk_rows else 10**9)
    with_table, without = pair
    for run_id in ("run-failed", "run-live"):
        for app in (None, "transform", "join_all"):
            for state in (None, "exec_done", "failed"):
                every = query.list_tasks(without, run_id, app=app, state=state, limit=1000)
                for descending in (False, True):
                    for offset in {
                        0,
                        3,
                        every.total // 2,
                        max(0, every.total - 4),
                        every.total + 2,
                    }:
                        a = query.list_tasks(
                            with_table,
                            run_id,
                            app=app,
                            state=state,
                            offset=offset,
                            limit=7,
                            descending=descending,
                        )
                        b = query.list_tasks(
                            without,
                            run_id,
                            app=app,
                            state=state,
                            offset=offset,
                            limit=7,
                            descending=descending,
                        )
                        where = (run_id, app, state, descending, offset)
                        assert [(t.task_id, t.state) for t in a.items] == [
                            (t.task_id, t.state) for t in b.items
                        ], where
                        assert a.total == b.total == every.total, where
                        ids = [t.task_id for t in every.items]
                        ids = ids[::-1] if descending else ids
                        assert [t.task_id for t in a.items] == ids[offset : offset + 7], where


def test_a_page_the_totals_say_is_empty_reads_no_task_row(pair):
    """With the writer's totals, a filter they count as matching nothing (an app without a
    failed task; a page past the end) is answered from the totals: it read the whole
    app's task rows, 0.25 s at 10^6 tasks. The answer is the one sorting gives."""
    with_table, without = pair
    run_id = "run-failed"
    counts = {
        app: query.list_tasks(without, run_id, app=app, state="failed", limit=1000).total
        for app in ("transform", "combine", "summarize", "join_all")
    }
    empty_app = next(app for app, n in counts.items() if n == 0)
    everything = query.list_tasks(without, run_id, app="transform", limit=1000).total
    for app, state, offset in ((empty_app, "failed", 0), ("transform", None, everything + 5)):
        statements: list[str] = []
        with_table.set_trace_callback(statements.append)
        try:
            page = query.list_tasks(with_table, run_id, app=app, state=state, offset=offset)
        finally:
            with_table.set_trace_callback(None)
        truth = query.list_tasks(without, run_id, app=app, state=state, offset=offset)
        assert page.items == [] and truth.items == []
        assert page.total == truth.total
        assert not [s for s in statements if " FROM task t" in s], statements


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


@pytest.mark.parametrize("layout", ["taskscope", "earlier"])
def test_fallback_for_a_run_that_is_most_of_the_database(tmp_path: Path, layout: str):
    """Such a run takes the covering scan of status's primary key; it must agree too. With
    Parsl's key order (task_id first) a small run seeks each task instead; with taskscope's
    (run_id first) the scan reads only the run's rows, so every run takes it."""
    runs = [
        SyntheticRun("big", tasks=1200, fail_fraction=0.05, seed=7),
        SyntheticRun("small", tasks=50, seed=8),
    ]
    with_table = open_readonly(create_database(tmp_path / "with.db", runs))
    path = create_database(tmp_path / "without.db", runs, task_state=False)
    if layout == "earlier":
        rewrite_in_earlier_layout(path)
    without = open_readonly(path)
    info = query.describe_database(without)
    assert state_source(without, info, "big").covering_index
    assert state_source(without, info, "small").covering_index == (layout == "taskscope")
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
    rewrite_in_earlier_layout(db)  # resource's key no longer leads with (run_id, task_id)
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


def test_dashboard_usage_of_a_long_run_fits_the_minute_rollups(tmp_path: Path):
    """On a run longer than the per-minute level's threshold the page's buckets are whole
    minutes or wider, so the kernel's in-flight tries come from the writer's per-minute flow
    (no sample of tries), and every series is what the API gives for that many buckets."""
    run = SyntheticRun("long", tasks=400, workers=4, task_seconds=25.0, seed=11)
    conn = open_readonly(create_database(tmp_path / "long.db", [run]))
    try:
        usage = query.run_usage(conn, "long", fit_rollups=True)
        assert usage is not None
        span = usage.bucket_seconds * len(usage.times)
        assert span > worker_query.MINUTE_LEVEL_ABOVE_S
        assert usage.bucket_seconds >= 60.0 and len(usage.times) == int(span // 60)
        assert usage.in_flight_fraction == 1.0 and max(usage.in_flight) > 0
        assert query.run_usage(conn, "long", buckets=len(usage.times)) == usage
        finer = query.run_usage(conn, "long")  # 200 buckets: finer than a minute
        assert finer is not None and len(finer.times) == 200
        # The truth: tries launched and not yet returned, from the try table. The flow
        # resolves whole minutes, so each bucket's figure is the count at the last minute
        # boundary before its end (the run's end for the last bucket), exactly.
        began = parse_timestamp(query.get_run(conn, "long").time_began)
        origin = calendar.timegm(began.timetuple()) + began.microsecond / 1e6

        def epoch(text):
            moment = parse_timestamp(text)
            return calendar.timegm(moment.timetuple()) + moment.microsecond / 1e6

        tries = [
            (epoch(a), None if b is None else epoch(b))
            for a, b in conn.execute(
                "SELECT task_try_time_launched, task_try_time_returned FROM try "
                "WHERE run_id = 'long' AND task_try_time_launched IS NOT NULL"
            )
        ]
        truth = []
        for i in range(len(usage.times)):
            end = origin + (i + 1) * usage.bucket_seconds
            at = end if i == len(usage.times) - 1 else math.floor(end / 60) * 60
            truth.append(sum(1 for a, b in tries if a < at and (b is None or b >= at)))
        assert usage.in_flight == [float(n) for n in truth]
    finally:
        conn.close()


def test_memory_and_cpu_are_the_time_averages_of_each_tries_samples(tmp_path: Path):
    """Each resource sample stands for the time since the previous sample of its try (or
    since the try started running): memory is its resident set over that time, CPU its CPU
    seconds over that time. Each bucket's value is recomputed here by brute force."""
    db = create_database(
        tmp_path / "m.db",
        [SyntheticRun("r", tasks=80, workers=3, task_seconds=7.0, samples_per_try=3, seed=9)],
    )
    conn = open_readonly(db)
    try:
        usage = query.run_usage(conn, "r", buckets=25, parts=("samples",))
        assert usage is not None and usage.sample_fraction == 1.0
        began, _ = resource_query._span(conn, "r")
        start = datetime.strptime(began, "%Y-%m-%d %H:%M:%S.%f")
        running = {
            (task, attempt): _seconds(at, start)
            for task, attempt, at in conn.execute(
                "SELECT task_id, try_id, task_try_time_running FROM try WHERE run_id = 'r' "
                "AND task_try_time_running IS NOT NULL"
            )
        }
        periods = []  # (from, to, memory, cpu rate)
        previous: dict[tuple[int, int], tuple[float, float]] = {}
        for task, attempt, at, rss, user, system in conn.execute(
            "SELECT task_id, try_id, timestamp, psutil_process_memory_resident, "
            "psutil_process_time_user, psutil_process_time_system FROM resource "
            "WHERE run_id = 'r' ORDER BY task_id, try_id, timestamp"
        ):
            end, cpu = _seconds(at, start), (user or 0.0) + (system or 0.0)
            since, cpu_before = previous.get((task, attempt), (running.get((task, attempt)), 0.0))
            previous[(task, attempt)] = (end, cpu)
            if since is not None and end > since:
                periods.append((since, end, rss or 0.0, max(cpu - cpu_before, 0.0) / (end - since)))
        width = usage.bucket_seconds
        for b in range(len(usage.times)):
            lo, hi = b * width, (b + 1) * width
            overlap = [max(0.0, min(hi, e) - max(lo, s)) for s, e, _, _ in periods]
            memory = sum(o * p[2] for o, p in zip(overlap, periods, strict=True)) / width
            cpu = sum(o * p[3] for o, p in zip(overlap, periods, strict=True)) / width
            # julianday() keeps milliseconds
            assert usage.memory_bytes[b] == pytest.approx(memory, rel=0.01, abs=1e3), b
            assert usage.cpu_cores[b] == pytest.approx(cpu, rel=0.01, abs=1e-3), b
    finally:
        conn.close()


def test_distributions_are_each_apps_task_values(pair):
    """Run time (its tries' running -> returned, summed), peak memory (over its tries) and
    CPU time (its tries' last samples, summed) of every task, grouped by app; quartiles are
    the values at rank floor((n - 1) q) of the sorted values."""
    with_table, _ = pair
    run_id = "run-failed"
    apps = dict(
        with_table.execute("SELECT task_id, task_func_name FROM task WHERE run_id = ?", (run_id,))
    )
    values: dict[tuple[str, str], dict[int, float]] = {}
    for task, running, returned in with_table.execute(
        "SELECT task_id, task_try_time_running, task_try_time_returned FROM try WHERE run_id = ?",
        (run_id,),
    ):
        if running and returned:
            seconds = (
                datetime.strptime(returned, "%Y-%m-%d %H:%M:%S.%f")
                - datetime.strptime(running, "%Y-%m-%d %H:%M:%S.%f")
            ).total_seconds()
            runs = values.setdefault(("duration", apps[task]), {})
            runs[task] = runs.get(task, 0.0) + seconds
    for task, _attempt, peak, cpu in with_table.execute(
        "SELECT task_id, try_id, MAX(psutil_process_memory_resident), "
        "MAX(psutil_process_time_user + psutil_process_time_system) FROM resource "
        "WHERE run_id = ? GROUP BY task_id, try_id",
        (run_id,),
    ):
        peaks = values.setdefault(("peak", apps[task]), {})
        peaks[task] = max(peaks.get(task, 0.0), peak)
        cpus = values.setdefault(("cpu", apps[task]), {})
        cpus[task] = cpus.get(task, 0.0) + cpu
    dists = {d.app: d for d in query.app_distributions(with_table, run_id)}
    assert {app for _, app in values} == set(dists)
    for (kind, app), by_task in values.items():
        box = getattr(
            dists[app],
            {"duration": "duration_s", "peak": "peak_memory_bytes", "cpu": "cpu_time_s"}[kind],
        )
        kept = sorted(by_task.values())
        n = len(kept)
        assert box.count == n, (kind, app)
        expected = (
            kept[0],
            kept[(n - 1) // 4],
            kept[(n - 1) // 2],
            kept[int((n - 1) * 0.75)],
            kept[-1],
        )
        assert (box.minimum, box.q1, box.median, box.q3, box.maximum) == pytest.approx(
            expected, rel=1e-3
        ), (kind, app)
        assert box.mean == pytest.approx(sum(kept) / n, rel=1e-3)  # julianday: milliseconds


def test_long_run_stream_reads_the_ten_minute_level_only_when_it_is_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """The whole-run stream of a long run is grouped from the per-ten-minutes occupancy;
    each lane's busy time is then still every try's time on that worker. A run whose level
    lacks tries (written before the writer kept it) is read per minute instead."""
    run = SyntheticRun("long", tasks=3200, workers=4, task_seconds=3.0, seed=13)  # ~40 min
    monkeypatch.setattr(timeline_query, "STREAM_MIN_COLUMNS", 4)  # as with hundreds of lanes
    monkeypatch.setattr(timeline_query, "STREAM_CELLS", 16)
    db = create_database(tmp_path / "long.db", [run])

    def lanes_busy() -> tuple[float, dict[str, float]]:
        conn = open_readonly(db)
        try:
            stream = timeline_query.task_stream(conn, "long")
            assert stream is not None and not stream.exact
            busy: dict[str, float] = {}
            for cell in stream.cells:
                busy[cell.lane] = busy.get(cell.lane, 0.0) + cell.busy_s
            return stream.column_seconds, busy
        finally:
            conn.close()

    raw = sqlite3.connect(db)
    truth = dict(
        raw.execute(
            "SELECT worker, SUM(time_ended - time_running) FROM taskscope_try_run "
            "WHERE run_id = 'long' AND time_ended IS NOT NULL GROUP BY worker"
        ).fetchall()
    )
    raw.close()
    column_s, busy = lanes_busy()
    assert column_s % 600 == 0
    assert busy.keys() == truth.keys()
    for worker, seconds in truth.items():
        assert busy[worker] == pytest.approx(seconds, rel=1e-9), worker
    raw = sqlite3.connect(db)
    raw.execute(  # as if the writer had kept the level from the second ten minutes on
        "DELETE FROM taskscope_occupancy_10min WHERE bucket = (SELECT MIN(bucket) FROM "
        "taskscope_occupancy_10min)"
    )
    raw.commit()
    raw.close()
    column_s, busy = lanes_busy()
    assert column_s % 600 != 0  # per minute
    for worker, seconds in truth.items():
        assert busy[worker] == pytest.approx(seconds, rel=1e-9), worker


def test_resource_figures_survive_rows_of_the_wrong_types(tmp_path: Path):
    """A database is data from anywhere: a resource row with text where numbers belong, a
    text task id or an unreadable time changes nothing that SQLite's arithmetic would not
    (text memory counts as 0), and the rest of the figures are those of the clean rows."""
    began = datetime(2026, 1, 1)  # both databases on the same clock
    runs = [SyntheticRun("r", tasks=60, workers=3, samples_per_try=2, seed=4, began=began)]
    clean = create_database(tmp_path / "clean.db", runs)
    dirty = create_database(tmp_path / "dirty.db", runs)
    raw = sqlite3.connect(dirty)
    (task, attempt, at) = raw.execute(
        "SELECT task_id, try_id, MAX(timestamp) FROM resource WHERE run_id = 'r' "
        "GROUP BY task_id, try_id LIMIT 1"
    ).fetchone()
    after = datetime.strptime(at, "%Y-%m-%d %H:%M:%S.%f") + timedelta(milliseconds=1)
    extra = (
        "INSERT INTO resource (run_id, task_id, try_id, timestamp, "
        "psutil_process_memory_resident, psutil_process_time_user) VALUES ('r', ?, ?, ?, ?, ?)"
    )
    raw.execute(extra, ("x", attempt, at, 1e9, 1.0))  # a text task id
    raw.execute(extra, (task, "y", at, 1e9, 1.0))  # a text try id
    raw.execute(extra, (task, attempt, "not a time", 1e9, 1.0))  # no readable time
    # text numbers, after the try's last sample: a period of no memory and no CPU
    raw.execute(extra, (task, attempt, after.strftime("%Y-%m-%d %H:%M:%S.%f"), "lots", "much"))
    raw.execute(
        "INSERT INTO try (run_id, task_id, try_id, task_executor) VALUES ('r', 'z', 0, 'e')"
    )
    raw.commit()
    raw.close()
    figures = []
    for db in (clean, dirty):
        conn = open_readonly(db)
        try:
            usage = query.run_usage(conn, "r", buckets=15, parts=("samples",))
            assert usage is not None
            figures.append((usage.memory_bytes, query.app_distributions(conn, "r")))
        finally:
            conn.close()
    (clean_memory, clean_dists), (dirty_memory, dirty_dists) = figures
    assert dirty_memory == pytest.approx(clean_memory)  # "lots" of memory is 0 bytes
    assert [d.app for d in dirty_dists] == [d.app for d in clean_dists]
    assert [d.duration_s for d in dirty_dists] == [d.duration_s for d in clean_dists]
