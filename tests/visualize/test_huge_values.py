"""Huge values in a database (a 20 MB traceback, a 1 MB app name, a 2 MB workflow name) make
no page huge: each value shown is cut, saying how much was left out."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path
from urllib.parse import quote

import pytest
from hostile_db import APP_COLUMNS
from starlette.testclient import TestClient

from taskscope.store.synthetic import create_database, standard_runs
from taskscope.visualize.app import create_app

pytestmark = [pytest.mark.attack, pytest.mark.timeout(600)]

PAGE_LIMIT = 2 * 2**20
BIG_APP = "A" * 1_000_000


@pytest.fixture(scope="module")
def huge_db(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    folder = tmp_path_factory.mktemp("huge")
    (folder / "outputs").mkdir()
    db = create_database(folder / "monitoring.db", standard_runs(folder / "outputs"))
    conn = sqlite3.connect(db)
    try:
        failed = conn.execute(
            "SELECT task_id FROM taskscope_try_failure WHERE run_id = 'run-failed' LIMIT 1"
        ).fetchone()[0]
        conn.execute(
            "UPDATE taskscope_try_failure SET traceback = ?, message = ? WHERE "
            "run_id = 'run-failed'",
            ("T" * 20_000_000, "M" * 5_000_000),
        )
        conn.execute(
            "UPDATE try SET task_fail_history = ? WHERE run_id = 'run-failed'", ("H" * 5_000_000,)
        )
        conn.execute(
            "UPDATE workflow SET workflow_name = ? WHERE run_id = 'run-failed'", ("W" * 2_000_000,)
        )
        app_columns = [
            (table, column[1])
            for (table,) in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            ).fetchall()
            for column in conn.execute(f'PRAGMA table_info("{table}")')
            if column[1] in APP_COLUMNS
        ]
        for table, column in app_columns:
            conn.execute(
                f"UPDATE {table} SET {column} = ? WHERE run_id = 'run-completed' AND "
                f"{column} = 'transform'",
                (BIG_APP,),
            )
        conn.commit()
    finally:
        conn.close()
    return db, failed


def test_no_page_grows_with_the_values_it_shows(huge_db: tuple[Path, int]):
    db, failed = huge_db
    client = TestClient(create_app(db))
    pages = [
        "/",
        "/workflow/run-failed/",
        f"/workflow/run-failed/task/{failed}",
        "/workflow/run-failed/app/transform?state=failed",
        "/workflow/run-completed/",
        "/workflow/run-completed/dag",
        "/workflow/run-completed/dag?view=apps",
        "/workflow/run-completed/task/4",
        f"/workflow/run-completed/app/{quote(BIG_APP[:100], safe='')}",
    ]
    for path in pages:
        joiner = "&" if "?" in path else "?"
        html = client.get(path).text
        urls = [path, path + joiner + "format=json"] + [
            f"{path}{joiner}part={name}&format=json"
            for name in re.findall(r'data-part="([^"]+)"', html)
        ]
        for url in urls:
            response = client.get(url)
            assert response.status_code in (200, 404), url
            assert len(response.content) < PAGE_LIMIT, (url, len(response.content))
    task_page = client.get(f"/workflow/run-failed/task/{failed}").text
    assert "more characters not shown" in task_page
    # The app names are cut in the figures too (the Gantt chart may be a deferred part).
    page = client.get("/workflow/run-completed/").text
    parts = re.findall(r'data-part="([^"]+)"', page)
    shown = page + "".join(
        client.get(f"/workflow/run-completed/?part={name}&format=json").text for name in parts
    )
    assert "more characters" in shown and len(shown) < 4 * PAGE_LIMIT
