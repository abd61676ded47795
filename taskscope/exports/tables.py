"""A run's rows as one file per table: CSV (standard library) or Parquet (pyarrow, the
``parquet`` extra).

Every table of the database is written: Parsl's seven and taskscope's own. Tables with a
``run_id`` column get the rows of the chosen run (or of every run); the others (the schema
version) are written whole. Rows are streamed in batches, so memory does not grow with the
table. Parquet columns take their types from the declared SQLite types: INTEGER, BIGINT and
BOOLEAN as int64, FLOAT as float64, DATETIME as timestamp[us] without zone (the file's
metadata says whether the run's times are UTC or the host's local time), TEXT as string.
"""

from __future__ import annotations

import csv
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

BATCH_ROWS = 20_000


class ExportError(Exception):
    """The tables cannot be written where asked (the message says why)."""


@dataclass(frozen=True)
class Column:
    name: str
    declared: str  # the declared SQLite type, upper case


@dataclass(frozen=True)
class TableExport:
    table: str
    path: Path
    rows: int


def tables_of(conn: sqlite3.Connection) -> list[tuple[str, list[Column]]]:
    names = [
        r[0]
        for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
            "ORDER BY name"
        )
    ]
    result = []
    for name in names:
        columns = [
            Column(r[1], (r[2] or "").upper()) for r in conn.execute(f'PRAGMA table_info("{name}")')
        ]
        result.append((name, columns))
    return result


def _selection(table: str, columns: list[Column], run_id: str | None) -> tuple[str, tuple]:
    names = ", ".join(f'"{c.name}"' for c in columns)
    if run_id is not None and any(c.name == "run_id" for c in columns):
        return f'SELECT {names} FROM "{table}" WHERE run_id = ?', (run_id,)
    return f'SELECT {names} FROM "{table}"', ()


def row_count(
    conn: sqlite3.Connection, table: str, columns: list[Column], run_id: str | None
) -> int:
    sql, params = _selection(table, columns, run_id)
    return conn.execute(f"SELECT COUNT(*) FROM ({sql})", params).fetchone()[0]


def _batches(conn: sqlite3.Connection, sql: str, params: tuple) -> Iterator[list[tuple]]:
    cursor = conn.execute(sql, params)
    while batch := cursor.fetchmany(BATCH_ROWS):
        yield batch


def _prepare(directory: Path) -> None:
    if directory.exists() and not directory.is_dir():
        raise ExportError(f"{directory} exists and is not a directory")
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ExportError(f"cannot create {directory}: {exc.strerror or exc}") from exc


def _partial(path: Path) -> Path:
    return path.with_name(f".{path.name}.partial")


def export_csv(
    conn: sqlite3.Connection,
    directory: Path,
    run_id: str | None,
    progress: Callable[[int], None] = lambda rows: None,
) -> list[TableExport]:
    """One ``TABLE.csv`` per table with a header row; NULL is an empty field."""
    _prepare(directory)
    written, done = [], 0
    for table, columns in tables_of(conn):
        path = directory / f"{table}.csv"
        partial = _partial(path)
        sql, params = _selection(table, columns, run_id)
        rows = 0
        try:
            with open(partial, "w", newline="", encoding="utf-8") as stream:
                writer = csv.writer(stream)
                writer.writerow([c.name for c in columns])
                for batch in _batches(conn, sql, params):
                    writer.writerows(batch)
                    rows += len(batch)
                    done += len(batch)
                    progress(done)
            partial.replace(path)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        written.append(TableExport(table, path, rows))
    return written


def _arrow_type(declared: str):
    import pyarrow as pa

    if declared in ("INTEGER", "BIGINT", "BOOLEAN", "INT"):
        return pa.int64()
    if declared in ("FLOAT", "REAL", "DOUBLE"):
        return pa.float64()
    if declared in ("DATETIME", "TIMESTAMP"):
        return pa.timestamp("us")
    return pa.string()


def _arrow_column(values: list, declared: str):
    import pyarrow as pa

    wanted = _arrow_type(declared)
    if pa.types.is_timestamp(wanted):
        # SQLite holds text; Arrow parses ISO 8601 text ("2026-01-01 12:00:00.123456").
        return pa.array([None if v is None else str(v) for v in values], pa.string()).cast(wanted)
    if pa.types.is_string(wanted):
        return pa.array([None if v is None else str(v) for v in values], pa.string())
    if pa.types.is_int64(wanted):
        return pa.array([None if v is None else int(v) for v in values], wanted)
    return pa.array([None if v is None else float(v) for v in values], wanted)


def export_parquet(
    conn: sqlite3.Connection,
    directory: Path,
    run_id: str | None,
    convention: str,
    progress: Callable[[int], None] = lambda rows: None,
) -> list[TableExport]:
    """One ``TABLE.parquet`` per table, written in row groups of `BATCH_ROWS`."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise ExportError(
            "--format parquet needs pyarrow: pip install 'taskscope[parquet]'"
        ) from exc
    _prepare(directory)
    written, done = [], 0
    for table, columns in tables_of(conn):
        path = directory / f"{table}.parquet"
        partial = _partial(path)
        schema = pa.schema(
            [pa.field(c.name, _arrow_type(c.declared)) for c in columns],
            metadata={
                "taskscope.table": table,
                "taskscope.timestamps": convention,
                "taskscope.run_id": run_id or "",
            },
        )
        sql, params = _selection(table, columns, run_id)
        rows = 0
        try:
            with pq.ParquetWriter(partial, schema) as writer:
                for batch in _batches(conn, sql, params):
                    arrays = [
                        _arrow_column([row[i] for row in batch], c.declared)
                        for i, c in enumerate(columns)
                    ]
                    writer.write_table(pa.Table.from_arrays(arrays, schema=schema))
                    rows += len(batch)
                    done += len(batch)
                    progress(done)
            partial.replace(path)
        except pa.ArrowInvalid as exc:
            partial.unlink(missing_ok=True)
            raise ExportError(
                f"table {table}: a value does not fit its declared type ({exc})"
            ) from exc
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        written.append(TableExport(table, path, rows))
    return written
