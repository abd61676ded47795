"""The demo's failed tries, as the dashboard shows them: from the user's frame, in demo.py."""

from __future__ import annotations

import sqlite3

from starlette.testclient import TestClient

from taskscope.visualize.app import create_app


def test_demo_failures_name_demo_py(demo_run) -> None:
    db, run_id = demo_run
    conn = sqlite3.connect(db)
    try:
        tracebacks = [
            row[0]
            for row in conn.execute(
                "SELECT traceback FROM taskscope_try_failure WHERE run_id = ?", (run_id,)
            )
        ]
    finally:
        conn.close()
    assert tracebacks
    for text in tracebacks:
        first_frame = text.splitlines()[1]
        assert "demo.py" in first_frame, text
        assert "<dynamic-code>" not in text


def test_demo_task_page_shows_the_users_frame(demo_run) -> None:
    db, run_id = demo_run
    conn = sqlite3.connect(db)
    try:
        (task_id,) = conn.execute(
            "SELECT task_id FROM taskscope_try_failure WHERE run_id = ? LIMIT 1", (run_id,)
        ).fetchone()
    finally:
        conn.close()
    page = TestClient(create_app(db)).get(f"/workflow/{run_id}/task/{task_id}").text
    assert "demo.py" in page and "&lt;dynamic-code&gt;" not in page and "wrapper.py" not in page


def test_demo_run_reads_as_completed_with_failures(demo_run) -> None:
    db, run_id = demo_run
    page = TestClient(create_app(db)).get(f"/workflow/{run_id}/").text
    assert "completed with 1 failed task" in page
    assert "_taskscope_internal" not in page
