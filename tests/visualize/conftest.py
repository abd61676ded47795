"""Databases for the dashboard tests: Parsl's fixture, a synthetic taskscope database with a
completed, a failed, a lost (crashed), a live and a resource-less run, and an empty one."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from fixture_paths import PARSL_FIXTURE_DB

from taskscope.store.synthetic import create_database, standard_runs
from taskscope.store.task_state import STATE_TABLE

REAL_WORKFLOW = Path(__file__).with_name("real_workflow.py")
HTEX_SHORT_TASKS = Path(__file__).with_name("htex_short_tasks.py")
DEMO = Path(__file__).parents[2] / "examples" / "demo.py"

PARSL_FIXTURE = PARSL_FIXTURE_DB


@pytest.fixture(scope="session")
def taskscope_db_without_state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same runs as `taskscope_db` without taskscope_task_state: readers must fall back to
    the status history, as on a database from a writer that does not keep the table."""
    folder = tmp_path_factory.mktemp("taskscope-nostate")
    outputs = folder / "outputs"
    outputs.mkdir()
    return create_database(folder / "monitoring.db", standard_runs(outputs), task_state=False)


@pytest.fixture(scope="session")
def real_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A database written by taskscope's own monitoring: a small workflow run in a separate
    process (tests/visualize/real_workflow.py) on a thread pool."""
    folder = tmp_path_factory.mktemp("real")
    db = folder / "monitoring.db"
    result = subprocess.run(
        [sys.executable, str(REAL_WORKFLOW), str(db), str(folder / "runinfo")],
        check=False,
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert db.exists(), "the workflow did not write its monitoring database"
    conn = sqlite3.connect(db)
    try:  # the writer keeps each task's latest state: the dashboard's fast path
        assert conn.execute(f"SELECT COUNT(*) FROM {STATE_TABLE}").fetchone()[0] > 0
    finally:
        conn.close()
    return db


def drop_state_table(source: Path, target: Path) -> Path:
    """A copy of `source` without taskscope_task_state, as a writer that did not keep it
    would leave it: readers must fall back to the status history."""
    shutil.copy(source, target)
    conn = sqlite3.connect(target)
    try:
        conn.execute(f"DROP TABLE IF EXISTS {STATE_TABLE}")
        conn.commit()
    finally:
        conn.close()
    return target


@pytest.fixture(scope="session")
def real_db_without_state(real_db: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return drop_state_table(real_db, tmp_path_factory.mktemp("real-nostate") / "monitoring.db")


def _only_run(db: Path) -> str:
    conn = sqlite3.connect(db)
    try:
        (run_id,) = conn.execute("SELECT run_id FROM workflow").fetchone()
    finally:
        conn.close()
    return run_id


@pytest.fixture(scope="session")
def htex_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """(database, run id) of tests/visualize/htex_short_tasks.py: 1,500 no-ops and four 0.2 s
    sleeps on HTEX with two workers, and bash apps with relative and AUTO_LOGNAME output
    paths, run from a scratch directory with a relative run_dir."""
    folder = tmp_path_factory.mktemp("htex-short")
    db = folder / "monitoring.db"
    result = subprocess.run(
        [sys.executable, str(HTEX_SHORT_TASKS), str(db), "runinfo"],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return db, _only_run(db)


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """(database, run id) of examples/demo.py, run as its docstring says, from a scratch
    directory (it writes runinfo/ there)."""
    folder = tmp_path_factory.mktemp("demo")
    result = subprocess.run(
        [sys.executable, str(DEMO)],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    db = folder / "runinfo" / "monitoring.db"
    return db, _only_run(db)
