"""The analysis's writer-kept totals (store/analysis_rollup.py) hold what a pass over Parsl's
tables finds, and the analysis reads the same figures from them as without them.

The stream is the row-pinning test's: two runs of plain, retried, failed, join (internal
executor), memoized and dep_fail tasks, kernel and worker messages overtaking each other,
replays, batches of random size and a writer restart half-way."""

from __future__ import annotations

import shutil
import sqlite3

import pytest
from test_writer_rows_unchanged import RUNS, _stream, _write

from taskscope.store.analysis.context import run_context
from taskscope.store.analysis.critical_path import critical_path, longest_run_weighted_path
from taskscope.store.analysis.hosts import host_health
from taskscope.store.analysis.report import analyze
from taskscope.store.analysis.stragglers import cohorts, stragglers
from taskscope.store.analysis.tries import run_key, tries_per_place
from taskscope.store.analysis_rollup import rollup_run_key
from taskscope.store.readonly import open_readonly
from taskscope.store.synthetic import SyntheticRun, create_database

USERS = "COALESCE(y.task_executor NOT IN ('_parsl_internal', '_taskscope_internal'), 0)"
FAILED = (
    "EXISTS (SELECT 1 FROM taskscope_try_failure f WHERE f.run_id = y.run_id "
    "AND f.task_id = y.task_id AND f.try_id = y.try_id)"
)
RUN_S = "((julianday(y.task_try_time_returned) - julianday(y.task_try_time_running)) * 86400.0)"


@pytest.fixture(scope="module")
def streamed(tmp_path_factory: pytest.TempPathFactory):
    path = tmp_path_factory.mktemp("rollup") / "monitoring.db"
    _write(path, _stream())
    return path


def _key(conn: sqlite3.Connection, run_id: str) -> int:
    key = rollup_run_key(conn, run_id)
    assert key is not None
    return key


@pytest.mark.parametrize("run_id", RUNS)
def test_tries_per_place_are_the_try_tables(streamed, run_id):
    conn = sqlite3.connect(streamed)
    truth = conn.execute(
        f"SELECT COALESCE(y.hostname, ''), COALESCE(y.block_id, ''), {USERS}, COUNT(*), "
        f"SUM({FAILED}) FROM try y WHERE y.run_id = ? GROUP BY 1, 2, 3 ORDER BY 1, 2, 3",
        (run_id,),
    ).fetchall()
    kept = conn.execute(
        "SELECT hostname, block_id, users, tries, failed FROM taskscope_place_tries "
        "WHERE run_key = ? AND tries > 0 ORDER BY 1, 2, 3",
        (_key(conn, run_id),),
    ).fetchall()
    assert kept == truth
    # The stream has failures, internal (join) tries and tries whose host came late.
    assert any(row[4] for row in truth) and any(row[2] == 0 for row in truth)


@pytest.mark.parametrize("run_id", RUNS)
def test_try_times_and_depends_are_the_try_and_task_tables(streamed, run_id):
    conn = sqlite3.connect(streamed)
    key = _key(conn, run_id)
    truth = conn.execute(
        f"SELECT y.task_id, y.try_id, {USERS}, {RUN_S}, NULLIF(y.task_joins, '') FROM try y "
        "WHERE y.run_id = ? ORDER BY 1, 2",
        (run_id,),
    ).fetchall()
    kept = conn.execute(
        "SELECT task_id, try_id, users, run_s, joins FROM taskscope_try_time WHERE run_key = ? "
        "ORDER BY 1, 2",
        (key,),
    ).fetchall()
    assert kept == truth  # the same floats, to the bit
    assert any(row[4] for row in truth)
    depends = conn.execute(
        "SELECT task_id, task_depends FROM task WHERE run_id = ? AND task_depends != '' ORDER BY 1",
        (run_id,),
    ).fetchall()
    assert (
        depends
        and depends
        == conn.execute(
            "SELECT task_id, depends FROM taskscope_task_depends WHERE run_key = ? ORDER BY 1",
            (key,),
        ).fetchall()
    )


def _without_totals(source, target) -> None:
    """A copy of the database whose runs the analysis must read from Parsl's tables (as it
    does a Parsl database's, or one written by an older taskscope)."""
    shutil.copy(source, target)
    conn = sqlite3.connect(target)
    conn.execute("UPDATE taskscope_run_key SET from_start = 0")
    conn.commit()
    conn.close()


def _figures(path, run_id: str, *, fast: bool):
    conn = open_readonly(path)
    try:
        ctx = run_context(conn, run_id)
        assert (run_key(ctx) is not None) == fast
        places = tries_per_place(ctx)
        floor = longest_run_weighted_path(ctx)
        hosts_alone = host_health(run_context(conn, run_id))
        ctx = run_context(conn, run_id)
        alone = stragglers(ctx, cohorts(ctx)), critical_path(ctx).tasks
        return places, floor, hosts_alone, alone, analyze(conn, run_id, read_files=False)
    finally:
        conn.close()


def _normalised(places):
    """The totals write a NULL host or block as '' (readers treat the two alike)."""
    merged: dict = {}
    for (host, block, users), n in places.items():
        key = (host or None, block or None, users)
        merged[key] = merged.get(key, 0) + n
    return merged


@pytest.mark.parametrize("run_id", RUNS)
def test_the_analysis_is_the_same_with_and_without_the_totals(streamed, tmp_path, run_id):
    slow_path = tmp_path / "without.db"
    _without_totals(streamed, slow_path)
    fast = _figures(streamed, run_id, fast=True)
    slow = _figures(slow_path, run_id, fast=False)
    assert _normalised(fast[0]) == _normalised(slow[0])
    assert fast[1] == slow[1] and fast[1] is not None and fast[1] > 0
    assert fast[2:] == slow[2:]
    # The hosts counted from the failure groups' failed tries (analyze runs them first) are
    # the ones counted from the writer's totals or the try table (host_health alone).
    assert fast[4].hosts == fast[2] and slow[4].hosts == slow[2]


def test_the_floor_is_the_longest_chain_of_run_times(tmp_path):
    """A synthetic run (the benchmark's shape: layered dependencies, retries, failures, a
    join app) through the real writer: the floor from the totals is the longest
    path computed here from the try and task tables."""
    path = tmp_path / "synthetic.db"
    run = SyntheticRun("floor-run", tasks=400, workers=8, hosts=2, seed=5)
    create_database(path, [run])
    conn = sqlite3.connect(path)
    weight: dict[int, float] = {}
    for task_id, seconds in conn.execute(
        f"SELECT y.task_id, {RUN_S} FROM try y WHERE y.run_id = ? AND {USERS} "
        "ORDER BY y.task_id, y.try_id",
        (run.run_id,),
    ):
        if seconds is not None and seconds > 0:
            weight[task_id] = weight.get(task_id, 0.0) + seconds
    edges: dict[int, set[int]] = {}
    for task_id, text in conn.execute(
        "SELECT task_id, task_depends FROM task WHERE run_id = ?", (run.run_id,)
    ):
        edges[task_id] = {int(d) for d in (text or "").split(",") if d}
    for task_id, text in conn.execute(
        "SELECT task_id, task_joins FROM try WHERE run_id = ? AND task_joins != ''", (run.run_id,)
    ):
        edges.setdefault(task_id, set()).update(int(d) for d in text.split(","))
    longest: dict[int, float] = {}

    def path_to(task_id: int) -> float:
        if task_id not in longest:
            before = [path_to(d) for d in edges.get(task_id, ())]
            longest[task_id] = weight.get(task_id, 0.0) + max(before, default=0.0)
        return longest[task_id]

    truth = max(path_to(t) for t in edges)
    conn.close()
    assert any(len(e) == 5 for e in edges.values())  # the join app's five joined tasks
    for fast in (True, False):
        if not fast:
            _without_totals(path, tmp_path / "slow.db")
            path = tmp_path / "slow.db"
        reader = open_readonly(path)
        ctx = run_context(reader, run.run_id)
        assert (run_key(ctx) is not None) == fast
        assert longest_run_weighted_path(ctx) == pytest.approx(truth, rel=1e-12)
        reader.close()


def test_a_run_not_begun_by_this_writer_is_read_from_parsls_tables(tmp_path):
    """Rows written before the totals existed (an older taskscope's run, replayed or not)
    are not in them: only a run whose start this writer saw is read from them."""
    path = tmp_path / "monitoring.db"
    _write(path, _stream())
    conn = sqlite3.connect(path)
    conn.execute("DELETE FROM taskscope_run_key WHERE run_id = ?", (RUNS[1],))
    conn.execute("INSERT INTO taskscope_run_key (run_id) VALUES (?)", (RUNS[1],))
    conn.commit()
    assert rollup_run_key(conn, RUNS[0]) is not None
    assert rollup_run_key(conn, RUNS[1]) is None
    conn.close()


def test_the_shared_sample_probed_by_index_is_the_test_on_every_try(tmp_path, monkeypatch):
    """finished_tries lists a 1-in-k sample's tasks and probes taskscope's (run_id, task_id)
    index; the same rows, in the same order, as the sample test on every try (Parsl's
    databases, which have no such index, take that path), with failures and retries."""
    from taskscope.store.analysis import tries as tries_module

    path = tmp_path / "sample.db"
    run = SyntheticRun("sample-run", tasks=3000, workers=8, hosts=3, seed=9)
    create_database(path, [run])
    reader = open_readonly(path)
    try:
        ctx = run_context(reader, run.run_id)
        for stride in (1, 3, 7):
            probed = tries_module.finished_tries(ctx, stride)
            with monkeypatch.context() as patch:
                patch.setattr(tries_module, "indexed_id_range", lambda *_: None)
                tested = tries_module.finished_tries(ctx, stride)
            assert probed == tested
            assert any(t.failed for t in tested) and len({t.task_id for t in tested}) > 100
            assert any(t.try_id > 0 for t in tested)
    finally:
        reader.close()
