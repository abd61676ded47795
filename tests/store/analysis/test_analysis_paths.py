"""Critical path, stragglers and sick hosts: on the planted workflow, on Parsl's database,
and on synthetic runs with a planted slow host and a planted failing host."""

from __future__ import annotations

import sqlite3

import pytest
from fixture_paths import PARSL_FIXTURE_DB, PARSL_RUN

from taskscope.store.analysis.context import run_context
from taskscope.store.analysis.critical_path import PARTS, critical_path, last_finished_task
from taskscope.store.analysis.hosts import host_health
from taskscope.store.analysis.stragglers import stragglers
from taskscope.store.readonly import open_readonly
from taskscope.store.synthetic import SyntheticRun, create_database

pytestmark = pytest.mark.timeout(600)


def _with_run(path, run_id, analysis):
    conn = open_readonly(path)
    try:
        return analysis(run_context(conn, run_id))
    finally:
        conn.close()


@pytest.mark.parametrize("which", ["first_run", "second_run"])
def test_the_planted_chain_is_the_critical_path(planted, which):
    path = _with_run(planted.path, getattr(planted, which), critical_path)
    assert [(s.task_id, s.app) for s in path.tasks] == [
        (0, "stage"),
        (1, "stage"),
        (2, "stage"),
        (3, "stage"),
    ]
    # The steps tile the makespan: each begins where the previous ended, parts add up.
    assert path.tasks[0].start <= path.tasks[0].end
    for before, after in zip(path.tasks, path.tasks[1:], strict=False):
        assert after.start == before.end
    assert sum(s.total_s for s in path.tasks) == pytest.approx(path.makespan_s, abs=1e-3)
    assert sum(path.totals[p] for p in PARTS) == pytest.approx(path.makespan_s, abs=1e-3)
    for step in path.tasks:
        assert step.run_s >= 1.45  # each stage sleeps 1.5 s
    # The floor is at least the chain's run time and at most what the run took.
    assert 6.0 - 0.1 <= path.floor_s <= path.makespan_s
    assert path.verdict.split(":")[0] in ("dependency-bound", "worker-bound", "overhead-bound")


@pytest.mark.parametrize("which", ["first_run", "second_run"])
def test_the_last_finished_task_is_found_by_the_status_index(planted, which):
    """On a real run the status index finds the task that returned last, as the pass over
    every task does, without that pass."""
    conn = open_readonly(planted.path)
    try:
        run_id = getattr(planted, which)
        (truth,) = conn.execute(
            "SELECT task_id FROM task WHERE run_id = ? AND task_time_returned IS NOT NULL "
            "ORDER BY task_time_returned DESC, task_id DESC LIMIT 1",
            (run_id,),
        ).fetchone()
        statements: list[str] = []
        conn.set_trace_callback(statements.append)
        found = last_finished_task(run_context(conn, run_id))
        conn.set_trace_callback(None)
    finally:
        conn.close()
    assert found == truth
    passes = [s for s in statements if "ORDER BY task_time_returned" in s and " IN (" not in s]
    assert not passes


def test_critical_path_on_parsl_database_tiles_its_makespan():
    path = _with_run(PARSL_FIXTURE_DB, PARSL_RUN, critical_path)
    assert path.tasks and path.makespan_s > 0
    assert sum(s.total_s for s in path.tasks) == pytest.approx(path.makespan_s, abs=1e-3)
    conn = sqlite3.connect(PARSL_FIXTURE_DB)
    last = conn.execute(
        "SELECT task_id FROM task ORDER BY task_time_returned DESC LIMIT 1"
    ).fetchone()[0]
    conn.close()
    assert path.tasks[-1].task_id == last


@pytest.mark.parametrize("which", ["first_run", "second_run"])
def test_exactly_the_planted_stragglers_are_flagged(planted, which):
    found = _with_run(planted.path, getattr(planted, which), stragglers)
    assert sorted(s.task_id for s in found) == [16, 17]  # steady(100), steady(101): 1.0 s
    for straggler in found:
        assert straggler.app == "steady" and straggler.cohort_size == 14
        assert straggler.cohort_median_s == pytest.approx(0.1, abs=0.05)
        assert not straggler.running


def test_no_stragglers_in_small_cohorts_of_parsl_run():
    # Parsl's sample: cpu_burn (4 tries) runs 3 s against ~0.05 s for the rest, but it is
    # its own app with a cohort too small to judge.
    found = _with_run(PARSL_FIXTURE_DB, PARSL_RUN, stragglers)
    assert all(s.app != "cpu_burn" for s in found)


def _sick_database(tmp_path):
    db = create_database(
        tmp_path / "hosts.db",
        [
            SyntheticRun(
                "hosts",
                tasks=1200,
                hosts=4,
                workers=2,
                fail_fraction=0.0,
                retry_fraction=0.0,
                with_resources=False,
                seed=7,
            )
        ],
    )
    conn = sqlite3.connect(db)
    # node3: every try runs 3x as long; node1: one try in four fails.
    conn.execute(
        "UPDATE try SET task_try_time_returned = strftime('%Y-%m-%d %H:%M:%f', "
        "julianday(task_try_time_running) + 3 * (julianday(task_try_time_returned) - "
        "julianday(task_try_time_running))) WHERE hostname = 'node3'"
    )
    conn.execute(
        "INSERT INTO taskscope_try_failure SELECT run_id, task_id, try_id, 'OSError', "
        "'disk error on /local', NULL, NULL FROM try WHERE hostname = 'node1' AND task_id % 16 = 1"
    )
    conn.commit()
    conn.close()
    return db


def test_only_the_planted_sick_hosts_are_flagged(tmp_path):
    db = _sick_database(tmp_path)
    health = _with_run(db, "hosts", host_health)
    hosts = {h.name: h for h in health if h.kind == "host"}
    assert set(hosts) == {"node0", "node1", "node2", "node3"}
    assert {h.name for h in health if h.flagged} == {"node1", "node3"}
    assert health[0].flagged and health[1].flagged  # flagged first
    assert any("failed" in r for r in hosts["node1"].reasons)
    assert hosts["node3"].slowdown == pytest.approx(3.0, rel=0.3)
    assert any("as long" in r for r in hosts["node3"].reasons)
    assert not hosts["node0"].flagged and not hosts["node2"].flagged


def test_a_healthy_cluster_flags_nothing(tmp_path):
    db = create_database(
        tmp_path / "fine.db",
        [
            SyntheticRun(
                "fine",
                tasks=1200,
                hosts=4,
                workers=2,
                fail_fraction=0.02,
                retry_fraction=0.05,
                with_resources=False,
                seed=11,
            )
        ],
    )
    assert not [h for h in _with_run(db, "fine", host_health) if h.flagged]


def test_a_try_still_running_far_too_long_is_a_live_straggler(tmp_path):
    db = create_database(
        tmp_path / "live.db",
        [
            SyntheticRun(
                "live", tasks=400, status="running", workers=4, seed=3, heartbeat_interval=1200.0
            )
        ],
    )
    conn = sqlite3.connect(db)
    running = conn.execute(
        "SELECT y.task_id, t.task_func_name FROM try y JOIN task t USING (run_id, task_id) "
        "WHERE y.task_try_time_returned IS NOT NULL AND t.task_func_name = 'generate' "
        "ORDER BY y.task_id DESC LIMIT 1"
    ).fetchone()
    # Started an hour ago and still running: far beyond 3x the ~1.5 s its app's tries take.
    conn.execute(
        "UPDATE try SET task_try_time_returned = NULL, task_try_time_running = "
        "strftime('%Y-%m-%d %H:%M:%f', 'now', '-1 hour') WHERE run_id = 'live' "
        "AND task_id = ?",
        (running[0],),
    )
    conn.commit()
    conn.close()
    found = _with_run(db, "live", stragglers)
    live = [s for s in found if s.running]
    assert [(s.task_id, s.app) for s in live] == [running]
    assert live[0].run_s > 3000


def test_floor_fast_pass_agrees_with_the_general_walk(tmp_path):
    from taskscope.store.analysis import critical_path as cp
    from taskscope.store.id_lists import id_list

    db = create_database(tmp_path / "floor.db", [SyntheticRun("floor", tasks=3000, seed=9)])
    conn = open_readonly(db)
    try:
        ctx = run_context(conn, "floor")
        fast = cp.longest_run_weighted_path(ctx)
        weight: dict[int, float] = {}
        for task_id, seconds in conn.execute(
            "SELECT task_id, (julianday(task_try_time_returned) - julianday("
            "task_try_time_running)) * 86400 FROM try WHERE run_id = 'floor'"
        ):
            weight[task_id] = weight.get(task_id, 0.0) + max(0.0, seconds or 0.0)
        depends = {
            t: id_list(d)
            for t, d in conn.execute(
                "SELECT task_id, task_depends FROM task WHERE run_id = 'floor'"
            )
        }
        for t, j in conn.execute(
            "SELECT task_id, task_joins FROM try WHERE run_id = 'floor' AND task_joins != ''"
        ):
            depends.setdefault(t, []).extend(id_list(j))
        ids = sorted(set(weight) | set(depends))
        general = cp._longest_path_any_order(ids, dict.fromkeys(ids, 0.0) | weight, depends)
    finally:
        conn.close()
    assert fast == pytest.approx(general, rel=1e-9) and fast > 0


def test_join_lists_are_merged_in_task_order_and_the_shared_lists_are_kept():
    from taskscope.store.analysis.critical_path import _with_joins

    rows = [(2, "1"), (5, "2,3"), (9, "5")]
    kept = list(rows)
    merged = _with_joins(rows, {5: [4], 7: [2, 5], 1: [], 12: [9]})
    # 5 gains its joined task, 7 and 12 (no dependencies) are placed by id, 1 joins nothing.
    assert merged == [(2, "1"), (5, "2,3,4"), (7, "2,5"), (9, "5"), (12, "9")]
    assert rows == kept


def test_dependency_roots_are_the_same_from_the_floors_lists(planted):
    from taskscope.store.analysis.failures import failure_groups

    conn = open_readonly(planted.path)
    try:
        alone = failure_groups(run_context(conn, planted.second_run), with_history=False)
        ctx = run_context(conn, planted.second_run)
        critical_path(ctx)  # reads every dependency list, which the groups then reuse
        after = failure_groups(ctx, with_history=False)
    finally:
        conn.close()
    assert [g.signature for g in after if g.cause == "dependency"]
    assert after == alone


def test_tries_on_internal_executors_count_for_neither_the_floor_nor_the_stragglers(tmp_path):
    from taskscope.store.analysis import critical_path as cp

    db = create_database(tmp_path / "internal.db", [SyntheticRun("internal", tasks=2000, seed=4)])
    conn = sqlite3.connect(db)
    # Every seventh task's tries ran on the kernel's own executor, for a day each: counted,
    # they would be the floor and every straggler.
    conn.execute(
        "UPDATE try SET task_executor = '_taskscope_internal', task_try_time_returned = "
        "datetime(task_try_time_running, '+1 day') WHERE task_id % 7 = 0 "
        "AND task_try_time_running IS NOT NULL"
    )
    # Three users' tries a thousand seconds long: the stragglers.
    conn.execute(
        "UPDATE try SET task_try_time_returned = datetime(task_try_time_running, '+1000 seconds') "
        "WHERE task_id IN (1, 2, 3) AND task_try_time_running IS NOT NULL"
    )
    conn.commit()
    conn.close()
    reader = open_readonly(db)
    try:
        fresh = run_context(reader, "internal")
        alone = stragglers(fresh)  # read in SQL: no shared run times yet
        ctx = run_context(reader, "internal")
        floor = cp.longest_run_weighted_path(ctx)
        shared = stragglers(ctx)  # from the floor's run times
    finally:
        reader.close()
    assert floor is not None and 0 < floor < 86400
    assert shared == alone and {s.task_id for s in shared} == {1, 2, 3}


@pytest.mark.parametrize(
    "rows",
    [
        [(1, "0"), (2, "1"), (3, "1,2"), (4, "2,3,1")],  # in order: one, two, three
        [(1, "0"), (2, "5"), (5, "1")],  # one dependency submitted later
        [(1, "0"), (3, "1,6"), (6, "1")],  # two, the second submitted later
        [(1, "0"), (3, "6,1"), (6, "2")],  # two, the first submitted later
        [(1, "0"), (3, "x,1"), (4, " 3"), (5, "4,,2")],  # not plain digits
    ],
)
def test_floor_array_pass_is_the_general_walk(monkeypatch, rows):
    """The floor's array pass (one and two dependencies added without a list) gives the
    general walk's figure to the bit, or leaves it to the walk when a dependency comes
    later in id order; tries with no run time or a negative one weigh nothing."""
    from types import SimpleNamespace

    from taskscope.store.analysis import critical_path as cp
    from taskscope.store.id_lists import id_list

    tries = [(0, 1.5), (1, 2.25), (2, 0.5), (3, 4.0), (3, 1.0), (4, None), (5, -1.0), (6, 7.0)]
    positive = [(t, s) for t, s in tries if s is not None and s > 0]
    runs = cp._RunTimes(len(tries), 0, 6, lambda: tries, lambda: iter(positive))
    monkeypatch.setattr(cp, "_run_times", lambda ctx: runs)
    monkeypatch.setattr(cp, "dependency_lists", lambda ctx: rows)
    monkeypatch.setattr(cp, "_joins", lambda ctx: {})
    ctx = SimpleNamespace(has=lambda table: True)
    weight = dict.fromkeys(range(7), 0.0)
    for task_id, seconds in positive:
        weight[task_id] += seconds
    depends = {t: id_list(text) for t, text in rows}
    general = cp._longest_path_any_order(list(range(7)), weight, depends)
    assert cp.longest_run_weighted_path(ctx) == general
