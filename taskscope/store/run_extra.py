"""What taskscope records about a run beyond Parsl's workflow row (``taskscope_run_extra``)."""

from __future__ import annotations

import sqlite3

from taskscope.store.readonly import describe_database


def launch_dir(conn: sqlite3.Connection, run_id: str) -> str | None:
    """The directory the workflow was started from (None for Parsl's runs and older ones)."""
    if not describe_database(conn).has("taskscope_run_extra"):
        return None
    row = conn.execute(
        "SELECT launch_dir FROM taskscope_run_extra WHERE run_id = ?", (run_id,)
    ).fetchone()
    return row[0] if row and row[0] else None


def longest_try_seconds(conn: sqlite3.Connection, run_id: str) -> float:
    """The longest try on its worker's clock so far (0 when nothing is recorded)."""
    if not describe_database(conn).has("taskscope_run_extra"):
        return 0.0
    row = conn.execute(
        "SELECT longest_try_s FROM taskscope_run_extra WHERE run_id = ?", (run_id,)
    ).fetchone()
    return float(row[0]) if row and row[0] else 0.0
