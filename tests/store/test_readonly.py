"""``readonly.is_busy``: the one rule for 'another connection holds the lock', asked by the
readers' retry, the writer's replay and the receiver (of an error or of its ``__cause__``)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from taskscope.store.readonly import is_busy


def test_a_real_lock_is_busy(tmp_path: Path):
    db = tmp_path / "m.db"
    holder = sqlite3.connect(db)
    holder.execute("CREATE TABLE t (x)")
    holder.execute("BEGIN EXCLUSIVE")
    other = sqlite3.connect(db, timeout=0)
    try:
        other.execute("SELECT * FROM t")
    except sqlite3.OperationalError as e:
        assert is_busy(e)
    else:
        raise AssertionError("an exclusive lock let a reader in")
    finally:
        other.close()
        holder.rollback()
        holder.close()


def test_other_errors_are_not_busy():
    assert not is_busy(sqlite3.OperationalError("no such table: t"))
    # the words alone are not enough: only SQLite's operational errors are retried
    assert not is_busy(sqlite3.IntegrityError("UNIQUE constraint failed: locked.id"))
    assert not is_busy(RuntimeError("database is locked"))
