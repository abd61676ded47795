"""Databases in the layout that Parsl, and taskscope before decision 22 (docs/architecture.md),
write: Parsl's seven tables as ordinary rowid tables with Parsl's primary-key order, exactly
as Parsl's DDL makes them, plus taskscope's indexes on them.

Tests write a database with today's writer and rewrite its tables so, to check that such
databases read, and take more rows, as today's do.
"""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

from fixture_paths import PARSL_FIXTURE_SQL

from taskscope.store.database import create_indexes
from taskscope.store.schema import PARSL_TABLE_NAMES

_CREATE_TABLE = re.compile(r"CREATE TABLE (\w+) \(.*?\n\);", re.DOTALL)
_CREATE_INDEX = re.compile(r"CREATE INDEX (\w+ ON \w+ \(.*?\));")


def parsl_table_ddl() -> dict[str, str]:
    """table -> Parsl's CREATE TABLE statement (tests/fixtures/parsl-schema.sql)."""
    text = Path(PARSL_FIXTURE_SQL).read_text()
    return {m.group(1): m.group(0) for m in _CREATE_TABLE.finditer(text)}


def without_rowid_tables(conn: sqlite3.Connection) -> set[str]:
    return {
        name
        for (name,) in conn.execute("SELECT name FROM pragma_table_list WHERE wr = 1")
        if name in PARSL_TABLE_NAMES
    }


def rewrite_in_earlier_layout(path: Path) -> Path:
    """Rebuild each of Parsl's tables that is not in Parsl's layout with Parsl's DDL, keeping
    its rows, then add taskscope's indexes as the writer would for that layout."""
    ddl = parsl_table_ddl()
    conn = sqlite3.connect(path)
    try:
        for table in sorted(without_rowid_tables(conn)):
            conn.execute(f'ALTER TABLE "{table}" RENAME TO "earlier_{table}"')
            conn.execute(ddl[table])
            conn.execute(f'INSERT INTO "{table}" SELECT * FROM "earlier_{table}"')
            conn.execute(f'DROP TABLE "earlier_{table}"')
        for index in _CREATE_INDEX.findall(Path(PARSL_FIXTURE_SQL).read_text()):
            conn.execute(f"CREATE INDEX IF NOT EXISTS {index}")
        create_indexes(conn)
        conn.commit()
        conn.execute("ANALYZE")
        conn.commit()
    finally:
        conn.close()
    return path
