"""The seven Parsl tables are Parsl's, column by column; other schemas are adopted or refused."""

import shutil
import sqlite3
from pathlib import Path

import pytest
from storehelp import PARSL_FIXTURE_DB, PARSL_FIXTURE_SQL, workflow_start

from taskscope.store import schema
from taskscope.store.database import open_for_writing, table_columns
from taskscope.store.errors import SchemaMismatchError, StoreError
from taskscope.store.messages import TaskInfo, TaskStatus
from taskscope.store.writer import DatabaseWriter

T0 = 1_700_000_000.25


def _parsl_columns(table):
    conn = sqlite3.connect(":memory:")
    conn.executescript(Path(PARSL_FIXTURE_SQL).read_text())
    return table_columns(conn, table)


@pytest.mark.parametrize("table", schema.PARSL_TABLE_NAMES)
def test_parsl_tables_match_parsl_fixture_column_by_column(tmp_path, table):
    conn = open_for_writing(tmp_path / "m.db")
    ours = table_columns(conn, table)
    assert ours == _parsl_columns(table)
    fixture = sqlite3.connect(PARSL_FIXTURE_DB)
    assert ours == table_columns(fixture, table)


def test_new_database_is_wal_with_version_and_utc_convention(tmp_path):
    conn = open_for_writing(tmp_path / "m.db")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute(
        "SELECT version, timestamp_convention FROM taskscope_schema"
    ).fetchall() == [(schema.SCHEMA_VERSION, "utc")]
    indexes = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='index'")}
    assert {"ix_status_run_time", "ix_resource_run_time", "ix_task_task_hashsum"} <= indexes
    assert "ix_resource_run_task" not in indexes  # resource's key leads with those columns


def test_reopening_a_taskscope_database_keeps_its_rows(tmp_path):
    conn = open_for_writing(tmp_path / "m.db")
    conn.execute(
        "INSERT INTO block VALUES ('r', 'x', '0', NULL, '2026-01-01 00:00:00.000000', 'RUNNING')"
    )
    conn.close()
    conn = open_for_writing(tmp_path / "m.db")
    assert conn.execute("SELECT count(*) FROM block").fetchone()[0] == 1
    assert conn.execute("SELECT count(*) FROM taskscope_schema").fetchone()[0] == 1


def test_parsl_database_is_adopted_without_touching_parsl_rows(tmp_path):
    db = tmp_path / "parsl.db"
    shutil.copy(PARSL_FIXTURE_DB, db)
    before = sqlite3.connect(db).execute("SELECT count(*) FROM status").fetchone()[0]
    conn = open_for_writing(db)
    assert conn.execute("SELECT count(*) FROM status").fetchone()[0] == before
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"taskscope_schema", "taskscope_run", "taskscope_try_failure"} <= tables


def test_a_file_made_before_a_later_column_gains_it_and_keeps_its_rows(tmp_path):
    """A taskscope file whose taskscope_task_state predates its duration column (made by the
    DDL of the time) is given the column and its index; its old rows keep NULL there and a
    task that ends afterwards gets its duration."""
    db = tmp_path / "older.db"
    conn = open_for_writing(db)
    conn.execute("DROP INDEX ix_task_state_run_duration")
    conn.execute("ALTER TABLE taskscope_task_state DROP COLUMN duration")
    conn.execute(
        "INSERT INTO taskscope_task_state VALUES ('old', 1, 0, 'exec_done', "
        "'2026-01-01 00:00:00.000000')"
    )
    conn.close()
    run = "new-run"
    writer = DatabaseWriter(open_for_writing(db))
    writer.write([workflow_start(run, T0)])
    writer.write([TaskInfo(run, 7, "f", False, "htex", T0, state="pending", timestamp=T0)])
    writer.write(
        [
            TaskStatus(run, 7, 0, "exec_done", T0 + 2.5),
            TaskInfo(run, 7, "f", False, "htex", T0, time_returned=T0 + 2.5),
        ]
    )
    writer.close(analyze=False)
    conn = sqlite3.connect(db)
    assert [c[0] for c in table_columns(conn, "taskscope_task_state")][-1] == "duration"
    rows = dict(conn.execute("SELECT run_id, duration FROM taskscope_task_state").fetchall())
    indexes = {r[1] for r in conn.execute("PRAGMA index_list(taskscope_task_state)")}
    conn.close()
    assert rows["old"] is None
    assert rows[run] == pytest.approx(2.5, abs=1e-3)
    assert "ix_task_state_run_duration" in indexes


def test_other_schema_version_is_refused(tmp_path):
    conn = open_for_writing(tmp_path / "m.db")
    conn.execute("UPDATE taskscope_schema SET version = 99")
    conn.close()
    with pytest.raises(SchemaMismatchError, match="version 99"):
        open_for_writing(tmp_path / "m.db")


def test_old_parsl_schema_missing_a_column_is_refused(tmp_path):
    db = tmp_path / "old.db"
    conn = sqlite3.connect(db)
    sql = Path(PARSL_FIXTURE_SQL).read_text().replace("\ttask_time_returned DATETIME, \n", "")
    conn.executescript(sql)
    conn.close()
    with pytest.raises(SchemaMismatchError, match="task_time_returned"):
        open_for_writing(db)


def test_unrelated_sqlite_database_is_refused(tmp_path):
    db = tmp_path / "other.db"
    sqlite3.connect(db).execute("CREATE TABLE invoices (id INTEGER)")
    with pytest.raises(SchemaMismatchError, match="invoices"):
        open_for_writing(db)
    assert sqlite3.connect(db).execute("SELECT name FROM sqlite_master").fetchall() == [
        ("invoices",)
    ]


def test_non_database_file_is_refused(tmp_path):
    db = tmp_path / "notes.db"
    db.write_text("these are not the droids " * 100)
    with pytest.raises(StoreError, match="not a database"):
        open_for_writing(db)


def test_unwritable_location_is_a_clear_error(tmp_path):
    # A directory that cannot exist (its parent is a file): unwritable even for root.
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StoreError, match="cannot create the directory"):
        open_for_writing(blocker / "sub" / "m.db")
