"""Tasks sorted by duration: the walk of the writer's stored durations gives the pages the
fallback (every task's duration computed and sorted) gives, and both are in the order of the
durations the task rows say."""

from __future__ import annotations

import shutil
import sqlite3

import pytest

from taskscope.store import duration_pages, query
from taskscope.store.readonly import open_readonly
from taskscope.store.synthetic import create_database, standard_runs
from taskscope.store.timestamps import parse_timestamp


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory):
    """The standard runs as the writer leaves them, and a copy whose stored durations are
    erased (as in a file an older writer made, which later gained the column)."""
    folder = tmp_path_factory.mktemp("durations")
    kept = create_database(folder / "kept.db", standard_runs())
    erased = folder / "erased.db"
    shutil.copy(kept, erased)
    conn = sqlite3.connect(erased)
    conn.execute("UPDATE taskscope_task_state SET duration = NULL")
    conn.commit()
    conn.close()
    with_durations, without = open_readonly(kept), open_readonly(erased)
    yield with_durations, without
    with_durations.close()
    without.close()


def _truth(conn: sqlite3.Connection, run_id: str) -> dict[int, tuple[str, float | None]]:
    """task -> (app, its invoked -> returned in seconds, from the task row's text)."""
    truth = {}
    for task_id, app, invoked, returned in conn.execute(
        "SELECT task_id, task_func_name, task_time_invoked, task_time_returned FROM task "
        "WHERE run_id = ?",
        (run_id,),
    ):
        start, end = parse_timestamp(invoked), parse_timestamp(returned)
        truth[task_id] = (app, (end - start).total_seconds() if start and end else None)
    return truth


def test_the_writer_keeps_the_duration_of_every_returned_task(pair):
    with_durations, without = pair
    for run_id in ("run-failed", "run-live"):
        assert duration_pages.durations_kept(with_durations, run_id)
        assert not duration_pages.durations_kept(without, run_id)
        stored = dict(
            with_durations.execute(
                "SELECT task_id, duration FROM taskscope_task_state WHERE run_id = ?", (run_id,)
            ).fetchall()
        )
        truth = _truth(with_durations, run_id)
        assert stored.keys() == truth.keys()
        for task_id, (_, seconds) in truth.items():
            if seconds is None:
                assert stored[task_id] is None
            else:  # julianday() keeps milliseconds
                assert stored[task_id] == pytest.approx(seconds, abs=1.5e-3)
    assert any(s is None for _, s in _truth(with_durations, "run-live").values())


@pytest.mark.parametrize("run_id", ["run-failed", "run-live"])
@pytest.mark.parametrize("descending", [True, False])
def test_pages_sorted_by_duration_agree(pair, monkeypatch, run_id: str, descending: bool):
    with_durations, without = pair
    walked = []
    real = duration_pages.duration_page

    def spy(*args, **kwargs):
        ids = real(*args, **kwargs)
        walked.append(ids is not None)
        return ids

    monkeypatch.setattr(query, "duration_page", spy)
    truth = _truth(with_durations, run_id)
    for app in (None, "transform", "join_all"):
        for state in (None, "exec_done", "failed"):
            every = query.list_tasks(
                without,
                run_id,
                app=app,
                state=state,
                sort="duration",
                descending=descending,
                limit=1000,
            )
            ids = [t.task_id for t in every.items]
            # The fallback's order is that of the task rows' durations, ties by id.
            shown = [(truth[i][1], i) for i in ids]
            assert all(truth[i][0] == app for i in ids) or app is None
            known = [d for d, _ in shown if d is not None]
            assert known == sorted(known, reverse=descending)
            nulls = [d is None for d, _ in shown]
            assert nulls == sorted(nulls, reverse=not descending)  # NULL first ascending
            for offset in sorted({0, 3, every.total // 2, max(0, every.total - 4)}):
                a = query.list_tasks(
                    with_durations,
                    run_id,
                    app=app,
                    state=state,
                    sort="duration",
                    descending=descending,
                    limit=7,
                    offset=offset,
                )
                where = (app, state, offset)
                assert [t.task_id for t in a.items] == ids[offset : offset + 7], where
                assert a.total == every.total, where
    assert walked and all(walked)


def test_a_walk_that_would_read_too_many_rows_is_left_to_the_sort(pair, monkeypatch):
    with_durations, without = pair
    monkeypatch.setattr(duration_pages, "WALK_ROWS", 0)
    assert (
        duration_pages.duration_page(
            with_durations,
            "run-failed",
            app="transform",
            state=None,
            total=40,
            run_tasks=150,
            descending=True,
            offset=0,
            limit=7,
        )
        is None
    )
    a = query.list_tasks(with_durations, "run-failed", app="transform", sort="duration", limit=9)
    b = query.list_tasks(without, "run-failed", app="transform", sort="duration", limit=9)
    assert [t.task_id for t in a.items] == [t.task_id for t in b.items]


@pytest.mark.parametrize("run_id", ["run-failed", "run-live"])
def test_a_big_runs_sampled_duration_statistics_read_the_stored_durations(
    pair, monkeypatch, run_id: str
):
    """Above DURATION_SAMPLE_ABOVE tasks the statistics are those of every k-th task: read
    from the stored durations (one database) or computed from the task rows (the other),
    they are the figures of the same tasks' invoked -> returned, to julianday's millisecond."""
    monkeypatch.setattr(query, "DURATION_SAMPLE_ABOVE", 10)
    monkeypatch.setattr(query, "MEDIAN_SAMPLE_TASKS", 30)
    with_durations = pair[0]
    reads = []
    real = duration_pages.durations_kept

    def spy(conn, run):
        kept = real(conn, run)
        reads.append(kept)
        return kept

    monkeypatch.setattr(query, "durations_kept", spy)
    stored, computed = (query.duration_stats(conn, run_id) for conn in pair)
    assert reads == [True, False]  # each database read its own way
    truth = _truth(with_durations, run_id)
    tasks = len(truth)
    stride = -(-tasks // 30)
    while stride % 2 == 0 or stride % 5 == 0:
        stride += 1
    sample = sorted(
        seconds
        for task_id, (_, seconds) in truth.items()
        if task_id % stride == 0 and seconds is not None
    )
    assert stride > 1 and len(sample) > 5
    for stats in (stored, computed):
        assert stats.all_sampled
        assert stats.minimum == pytest.approx(sample[0], abs=1.5e-3)
        assert stats.maximum == pytest.approx(sample[-1], abs=1.5e-3)
        assert stats.median == pytest.approx(sample[(len(sample) - 1) // 2], abs=1.5e-3)
        assert stats.mean == pytest.approx(sum(sample) / len(sample), abs=1.5e-3)
    assert stored.count == computed.count
