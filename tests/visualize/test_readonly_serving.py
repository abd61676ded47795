"""Serving a database is reading it: nothing is created beside a closed database, and a live
writer's uncheckpointed rows are still seen."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

from starlette.testclient import TestClient

from taskscope.store.synthetic import create_database, standard_runs
from taskscope.visualize.app import create_app

PAGES = [
    "/",
    "/workflow/run-completed/",
    "/workflow/run-completed/dag",
    "/workflow/run-completed/resources",
    "/workflow/run-completed/task/9",
]


def test_a_closed_wal_database_is_served_without_creating_files(tmp_path: Path):
    folder = tmp_path / "db"
    folder.mkdir()
    db = create_database(folder / "monitoring.db", standard_runs())
    with open(db, "rb") as handle:  # WAL mode is recorded in the header (versions 2, 2)
        assert handle.read(20)[18:20] == b"\x02\x02"
    before = sorted(p.name for p in folder.iterdir())
    assert before == ["monitoring.db"]
    client = TestClient(create_app(db))
    for path in PAGES:
        assert client.get(path).status_code == 200, path
    assert sorted(p.name for p in folder.iterdir()) == before


def test_parsl_database_is_served_without_creating_files(tmp_path: Path, parsl_db: Path):
    db = tmp_path / "monitoring.db"
    shutil.copy(parsl_db, db)
    assert TestClient(create_app(db)).get("/").status_code == 200
    assert [p.name for p in tmp_path.iterdir()] == ["monitoring.db"]


def test_a_live_writers_rows_in_the_wal_are_seen(tmp_path: Path):
    db = create_database(tmp_path / "monitoring.db", standard_runs())
    writer = sqlite3.connect(db)
    try:
        writer.execute("PRAGMA journal_mode = WAL")
        writer.execute("PRAGMA wal_autocheckpoint = 0")  # the row stays in the WAL only
        writer.execute(
            "UPDATE workflow SET workflow_name = 'renamed-in-wal' WHERE run_id = 'run-completed'"
        )
        writer.commit()
        assert (tmp_path / "monitoring.db-wal").stat().st_size > 0
        page = TestClient(create_app(db)).get("/workflow/run-completed/")
        assert page.status_code == 200 and "renamed-in-wal" in page.text
    finally:
        writer.close()
    page = TestClient(create_app(db)).get("/workflow/run-completed/")
    assert "renamed-in-wal" in page.text
