"""Parsl's tables in taskscope's storage layout (WITHOUT ROWID, keys led by run_id) and in the
layout of Parsl's and older taskscope databases (rowid tables, Parsl's key order) hold the
same rows, take the same rows from the writer, and answer readers the same."""

from __future__ import annotations

import dataclasses
import shutil
import sqlite3
from pathlib import Path

import pytest
from earlier_layout import rewrite_in_earlier_layout, without_rowid_tables
from storehelp import PARSL_FIXTURE_DB
from test_writer_rows_unchanged import _stream, _table_figures, _write

from taskscope.store import query, resource_query, timeline_query
from taskscope.store.analysis.report import analyze, as_json
from taskscope.store.database import open_for_writing
from taskscope.store.key_order import index_leading_with, primary_key_columns
from taskscope.store.readonly import open_readonly
from taskscope.store.records import RunRow, RunSummary
from taskscope.store.synthetic import create_database, standard_runs

# The tables taskscope stores WITHOUT ROWID, each row once in its primary key's b-tree.
COMPACT = {"status", "resource"}


def test_a_new_database_stores_each_compact_table_once_keyed_by_run(tmp_path: Path):
    conn = open_for_writing(tmp_path / "m.db")
    assert without_rowid_tables(conn) == COMPACT
    for table in COMPACT:
        assert primary_key_columns(conn, table)[:2] == ["run_id", "task_id"]
    # the one index status keeps besides its key: the run's rows by time
    assert index_leading_with(conn, "status", ["run_id", "timestamp"]) == "ix_status_run_time"
    # resource's (run_id, task_id, ...) lookups are its key's: no second copy as an index
    names = {row[1] for row in conn.execute("PRAGMA index_list(resource)")}
    assert "ix_resource_run_task" not in names
    assert index_leading_with(conn, "resource", ["run_id", "task_id"]) is not None


def test_parsl_database_keeps_its_layout_when_adopted(tmp_path: Path):
    db = tmp_path / "parsl.db"
    db.write_bytes(Path(PARSL_FIXTURE_DB).read_bytes())
    conn = open_for_writing(db)
    assert without_rowid_tables(conn) == set()
    assert primary_key_columns(conn, "status")[0] == "task_id"


def test_an_earlier_layout_takes_the_same_rows_from_the_writer(tmp_path: Path):
    """The writer's whole message stream (duplicates, restarts) into a new database and into
    one in the earlier layout leaves the same rows in every table."""
    new = tmp_path / "new.db"
    _write(new, _stream())
    earlier = tmp_path / "earlier.db"
    open_for_writing(earlier).close()
    rewrite_in_earlier_layout(earlier)
    assert without_rowid_tables(sqlite3.connect(earlier)) == set()
    _write(earlier, _stream())
    assert _table_figures(earlier) == _table_figures(new)


@pytest.fixture(scope="module")
def both_layouts(tmp_path_factory: pytest.TempPathFactory):
    """One database written by the writer, and a copy of it rewritten in the earlier layout
    (synthetic runs are timed from now, so two writes would differ)."""
    folder = tmp_path_factory.mktemp("layouts")
    ours = create_database(folder / "taskscope.db", standard_runs())
    earlier = folder / "earlier.db"
    shutil.copy(ours, earlier)
    rewrite_in_earlier_layout(earlier)
    dbs = {"taskscope": open_readonly(ours), "earlier": open_readonly(earlier)}
    yield dbs
    for conn in dbs.values():
        conn.close()


def _analysis(conn: sqlite3.Connection, run: str) -> dict:
    figures = as_json(analyze(conn, run, read_files=False))
    figures.pop("computed_s", None)  # how long it took, not what it found
    # A live run's forecast starts from the clock's now (its running tasks' elapsed times).
    for from_now in ("made_at", "p50_s", "p90_s", "p50_finish", "p90_finish"):
        (figures.get("forecast") or {}).pop(from_now, None)
    return figures


def _settled(row: RunRow) -> RunRow:
    """A run still going lasts until the clock's now, which moves between two reads."""
    return row if row.time_completed else dataclasses.replace(row, duration_s=None)


def _summary(conn: sqlite3.Connection, run: str) -> RunSummary | None:
    summary = query.run_summary(conn, run)
    return summary and dataclasses.replace(summary, run=_settled(summary.run))


READS = {
    "runs": lambda c, run: [_settled(r) for r in query.list_runs(c).items],
    "summary": _summary,
    "state_counts": query.state_counts,
    "app_summary": query.app_summary,
    "app_graph": query.app_graph,
    "failed_tasks": lambda c, run: query.list_tasks(c, run, state="failed", limit=1000),
    "all_tasks": lambda c, run: query.list_tasks(c, run, limit=1000),
    "task_detail": lambda c, run: [query.task_detail(c, run, t) for t in (0, 7, 33)],
    "gantt": lambda c, run: query.timeline(c, run, limit=100),
    "samples": lambda c, run: [resource_query.resource_series(c, run, t) for t in (1, 8)],
    "usage": resource_query.run_usage,
    "distributions": resource_query.app_distributions,
    "state_timeline": timeline_query.state_timeline,
    "stream": timeline_query.task_stream,
    "window": lambda c, run: timeline_query.tasks_in_window(c, run, 0.0, 30.0),
    "analysis": _analysis,
}


@pytest.mark.parametrize("read", sorted(READS))
@pytest.mark.parametrize(
    "run", ["run-completed", "run-failed", "run-lost", "run-live", "run-noresources"]
)
def test_readers_answer_the_same_in_both_layouts(both_layouts, read: str, run: str):
    ours = READS[read](both_layouts["taskscope"], run)
    earlier = READS[read](both_layouts["earlier"], run)
    assert ours == earlier
