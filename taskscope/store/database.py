"""Open a monitoring database for writing: create it, adopt a Parsl database, or refuse.

The writer never writes into a file whose schema it does not understand: a database from
another taskscope schema version, a Parsl database whose tables differ from the ones we
write, or an unrelated SQLite file is refused with a message that says what was found.
"""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path

from taskscope.store import schema
from taskscope.store.analysis_rollup import ANALYSIS_ROLLUP_TABLES, create_analysis_rollups
from taskscope.store.errors import SchemaMismatchError, StoreError
from taskscope.store.key_order import index_leading_with
from taskscope.store.timefmt import utc_text

ColumnSpec = tuple[str, str, int, bool]  # name, declared type, notnull, in the primary key


def table_columns(conn: sqlite3.Connection, table: str) -> list[ColumnSpec]:
    """Each column as the writer relies on it. The primary key's columns count, not their
    order: the same columns make the same rows unique, and taskscope orders them to serve
    its lookups (schema.py) where Parsl's databases keep Parsl's order."""
    rows = conn.execute(f'PRAGMA table_info("{table}")').fetchall()
    return [(r[1], r[2].upper(), r[3], r[5] > 0) for r in rows]


def run_script(conn: sqlite3.Connection, script: str) -> None:
    """Run DDL statement by statement: executescript() would commit our open transaction."""
    for statement in script.split(";"):
        if statement.strip():
            conn.execute(statement)


def create_indexes(conn: sqlite3.Connection) -> None:
    """Create schema.INDEXES, each unless an index of its table already begins with its
    columns (in taskscope's layout, the primary key of try or resource)."""
    for name, table, columns in schema.INDEXES:
        if index_leading_with(conn, table, columns) is None:
            conn.execute(f"CREATE INDEX IF NOT EXISTS {name} ON {table} ({', '.join(columns)})")


def _expected_columns() -> dict[str, list[ColumnSpec]]:
    mem = sqlite3.connect(":memory:")
    try:
        run_script(mem, schema.PARSL_TABLES + schema.TASKSCOPE_TABLES + ANALYSIS_ROLLUP_TABLES)
        names = [r[0] for r in mem.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return {name: table_columns(mem, name) for name in names}
    finally:
        mem.close()


EXPECTED_COLUMNS = _expected_columns()


def _existing_tables(conn: sqlite3.Connection) -> set[str]:
    rows = conn.execute(
        "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%'"
    )
    return {r[0] for r in rows}


def _describe_mismatch(conn: sqlite3.Connection, tables: set[str]) -> list[str]:
    problems = []
    for table in sorted(tables & EXPECTED_COLUMNS.keys()):
        found = table_columns(conn, table)
        wanted = EXPECTED_COLUMNS[table]
        if found != wanted:
            missing = [c[0] for c in wanted if c[0] not in {f[0] for f in found}]
            extra = [c[0] for c in found if c[0] not in {w[0] for w in wanted}]
            detail = []
            if missing:
                detail.append("missing columns " + ", ".join(missing))
            if extra:
                detail.append("unexpected columns " + ", ".join(extra))
            if not detail:
                detail.append("columns differ in type, NOT NULL or primary key")
            problems.append(f"table {table!r}: " + "; ".join(detail))
    return problems


def add_later_columns(conn: sqlite3.Connection, tables: set[str]) -> None:
    """Give an existing table the columns added to it since it was made (schema.LATER_COLUMNS):
    appended, as in the DDL, so the schema check then finds the columns it expects."""
    for table, column, kind in schema.LATER_COLUMNS:
        if table in tables and column not in {c[0] for c in table_columns(conn, table)}:
            conn.execute(f'ALTER TABLE "{table}" ADD COLUMN "{column}" {kind}')


def check_and_prepare_schema(conn: sqlite3.Connection, path: str) -> str:
    """Create or validate the schema; returns 'created', 'taskscope' or 'adopted-parsl'."""
    tables = _existing_tables(conn)
    if not tables:
        run_script(conn, schema.PARSL_TABLES + schema.TASKSCOPE_TABLES)
        create_indexes(conn)
        create_analysis_rollups(conn)
        _write_schema_row(conn)
        return "created"

    if "taskscope_schema" in tables:
        row = conn.execute("SELECT version, timestamp_convention FROM taskscope_schema").fetchone()
        if row is None:
            raise SchemaMismatchError(f"{path}: taskscope_schema table is empty; refusing to write")
        if row[0] != schema.SCHEMA_VERSION:
            raise SchemaMismatchError(
                f"{path} was written with taskscope schema version {row[0]}, this taskscope "
                f"writes version {schema.SCHEMA_VERSION}; use another logging_endpoint "
                "(or move the old file away) so that neither is damaged"
            )
        kind = "taskscope"
    elif set(schema.PARSL_TABLE_NAMES) <= tables:
        kind = "adopted-parsl"
    else:
        ours = tables & set(EXPECTED_COLUMNS)
        found = ", ".join(sorted(tables))
        if ours:
            raise SchemaMismatchError(
                f"{path} holds only part of a monitoring schema (tables: {found}); refusing to "
                "write"
            )
        raise SchemaMismatchError(
            f"{path} is an SQLite database of something else (tables: {found}); "
            "point logging_endpoint at a new file"
        )

    add_later_columns(conn, tables)
    problems = _describe_mismatch(conn, tables)
    if problems:
        origin = "Parsl" if kind == "adopted-parsl" else "taskscope"
        raise SchemaMismatchError(
            f"{path} has a {origin} schema that differs from the one taskscope writes ("
            + "; ".join(problems)
            + "); refusing to write so that no row is lost"
        )
    # Adding taskscope's own tables to a Parsl database is safe: Parsl's tables are untouched
    # and Parsl's runs keep their local-time timestamps (they have no taskscope_run row).
    run_script(conn, schema.TASKSCOPE_TABLES)
    create_indexes(conn)
    create_analysis_rollups(conn)
    if kind == "adopted-parsl":
        _write_schema_row(conn)
    return kind


def _write_schema_row(conn: sqlite3.Connection) -> None:
    conn.execute(
        "INSERT INTO taskscope_schema (version, timestamp_convention, created) VALUES (?, ?, ?)",
        (schema.SCHEMA_VERSION, schema.TIMESTAMP_CONVENTION, utc_text(time.time())),
    )


def open_for_writing(path: str | os.PathLike[str]) -> sqlite3.Connection:
    """Open (creating if needed) the database at ``path`` as the run's one writer.

    Raises StoreError with a plain explanation when the location is unusable.
    """
    p = Path(path)
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise StoreError(f"cannot create the directory for {p}: {e.strerror or e}") from e
    if p.exists() and not os.access(p, os.W_OK):
        raise StoreError(f"{p} exists but is not writable")
    if not p.exists() and not os.access(p.parent, os.W_OK):
        raise StoreError(f"cannot create {p}: directory {p.parent} is not writable")
    try:
        # isolation_level=None: the writer issues BEGIN/COMMIT itself to control batch size.
        conn = sqlite3.connect(str(p), isolation_level=None, check_same_thread=False, timeout=10)
    except sqlite3.Error as e:
        raise StoreError(f"cannot open {p}: {e}") from e
    try:
        conn.execute("PRAGMA busy_timeout = 10000")
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if mode.lower() != "wal":
            raise StoreError(f"{p}: SQLite refused WAL mode (got {mode!r}); readers would block")
        # NORMAL in WAL mode: commits survive a crash of the process (not of the OS) and
        # cost no fsync each; the WAL is synced at checkpoints.
        conn.execute("PRAGMA synchronous = NORMAL")
        # A larger page cache keeps the indexes hot under a stream of inserts.
        conn.execute("PRAGMA cache_size = -65536")
        conn.execute("BEGIN IMMEDIATE")
        check_and_prepare_schema(conn, str(p))
        conn.execute("COMMIT")
    except sqlite3.DatabaseError as e:
        conn.close()
        raise StoreError(f"cannot use {p} as a monitoring database: {e}") from e
    except StoreError:
        conn.close()
        raise
    return conn


def open_side_writer(path: str | os.PathLike[str]) -> sqlite3.Connection:
    """A short-lived write connection for a reader's own bookkeeping table (such as the
    analysis's stored forecasts) in a database that taskscope already writes: never creates
    the file, never adopts a Parsl database, and waits politely for the run's writer.

    Raises StoreError when the file is missing, is not taskscope's, or is read-only."""
    p = Path(path)
    if not p.is_file():
        raise StoreError(f"no monitoring database at {p}")
    if not os.access(p, os.W_OK):
        raise StoreError(f"{p} is not writable")
    try:
        conn = sqlite3.connect(str(p), timeout=2.0, check_same_thread=False)
        conn.execute("PRAGMA busy_timeout = 2000")
        tables = _existing_tables(conn)
    except sqlite3.DatabaseError as e:
        raise StoreError(f"cannot open {p} for writing: {e}") from e
    if "taskscope_schema" not in tables:
        conn.close()
        raise StoreError(f"{p} is not a taskscope database; it is left untouched")
    return conn
