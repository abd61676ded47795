"""Task pages show the stdout/stderr of taskscope's own runs: relative paths and AUTO_LOGNAME
resolve against the directory the workflow was launched from, wherever the dashboard runs."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from taskscope.visualize.app import create_app


def bash_tasks(db: Path, run_id: str, app: str) -> list[tuple[int, str]]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute(
            "SELECT task_id, task_stdout FROM task WHERE run_id = ? AND task_func_name = ? "
            "ORDER BY task_id",
            (run_id, app),
        ).fetchall()
    finally:
        conn.close()


def task_page(db: Path, run_id: str, task_id: int) -> str:
    client = TestClient(create_app(db))
    response = client.get(f"/workflow/{run_id}/task/{task_id}")
    assert response.status_code == 200, response.text[:500]
    return response.text


@pytest.fixture
def elsewhere(tmp_path, monkeypatch):
    """The dashboard started from an unrelated directory."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_relative_and_auto_logname_tails(htex_run, elsewhere) -> None:
    db, run_id = htex_run
    tasks = dict(bash_tasks(db, run_id, "say"))
    assert sorted(Path(p).is_absolute() for p in tasks.values()) == [False, False]
    pages = [task_page(db, run_id, task_id) for task_id in tasks]
    text = "\n".join(pages)
    for word in ("relative", "auto"):
        assert f"said-{word}" in text and f"complained-{word}" in text
    assert "not readable" not in text
    # AUTO_LOGNAME put the file under the (relative) run directory, as Parsl does.
    assert any("task_logs" in path for path in tasks.values())


def test_demo_bash_app_tail(demo_run, elsewhere) -> None:
    db, run_id = demo_run
    ((task_id, stdout),) = bash_tasks(db, run_id, "word_count")
    assert stdout and not Path(stdout).is_absolute()  # demo.py names runinfo/NNN/wc.out
    page = task_page(db, run_id, task_id)
    assert "words.txt" in page.split("stdout", 1)[1]  # wc's output line, from the file
    assert "not readable" not in page


def test_parsl_database_keeps_its_absolute_paths(parsl_db, elsewhere) -> None:
    conn = sqlite3.connect(parsl_db)
    try:
        run_id, task_id, stdout = conn.execute(
            "SELECT run_id, task_id, task_stdout FROM task WHERE task_stdout IS NOT NULL "
            "AND task_stdout != '' LIMIT 1"
        ).fetchone()
    finally:
        conn.close()
    page = task_page(parsl_db, run_id, task_id)
    assert stdout in page
