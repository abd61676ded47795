"""A database built to hold the server: views in place of tables, and a read that never
ends. Views are not taken for tables, and every read stops at a deadline with the reason."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from taskscope.store.synthetic import create_database, standard_runs
from taskscope.visualize import source
from taskscope.visualize.app import create_app
from taskscope.visualize.source import DatabaseSource

pytestmark = [pytest.mark.attack, pytest.mark.timeout(300)]

ENDLESS = (
    "WITH RECURSIVE r(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM r) SELECT * FROM r WHERE x < 0"
)


def test_endless_views_in_place_of_tables_are_not_read(tmp_path: Path):
    db = create_database(tmp_path / "monitoring.db", standard_runs())
    conn = sqlite3.connect(db)
    try:
        for table in ("workflow", "task", "status"):
            conn.execute(f"ALTER TABLE {table} RENAME TO {table}_real")
            conn.execute(f"CREATE VIEW {table} AS SELECT t.* FROM {table}_real t, ({ENDLESS})")
        conn.commit()
    finally:
        conn.close()
    answers: list[int] = []

    def visit() -> None:
        client = TestClient(create_app(db), raise_server_exceptions=False)
        answers.extend(
            client.get(path).status_code
            for path in ("/", "/workflow/run-completed/", "/workflow/run-completed/task/1")
        )

    visitor = threading.Thread(target=visit, daemon=True)
    visitor.start()
    visitor.join(120)
    assert answers and all(status < 500 for status in answers), answers


def test_a_read_that_never_ends_is_stopped_at_the_deadline(tmp_path: Path, monkeypatch):
    db = create_database(tmp_path / "monitoring.db", [])
    monkeypatch.setattr(source, "READ_DEADLINE_S", 1.0)
    with pytest.raises(sqlite3.OperationalError, match="ran past 1 s"):
        DatabaseSource(db).read(lambda conn: conn.execute(ENDLESS).fetchall())
    assert DatabaseSource(db).read(lambda conn: conn.execute("SELECT 1").fetchall()) == [(1,)]
