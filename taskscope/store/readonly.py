"""Finding a monitoring database and opening it read-only, for the dashboard and terminal tools.

Readers never create, migrate or lock the database for writing: the connection is opened
with ``mode=ro``, so a wrong path is an error instead of a new empty file, and a live writer
(WAL mode) is never blocked by a reader.
"""

from __future__ import annotations

import os
import sqlite3
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from taskscope.store.records import DatabaseInfo

T = TypeVar("T")

DEFAULT_NAMES = ("monitoring.db", "runinfo/monitoring.db")
BUSY_ATTEMPTS = 20
BUSY_PAUSE_S = 0.05


class DatabaseNotFound(Exception):
    """The monitoring database the user asked for does not exist or cannot be opened."""


@dataclass(frozen=True)
class LocatedDatabase:
    path: Path
    how: str  # why this file was chosen, for the user


def path_from_argument(argument: str, cwd: Path) -> Path:
    """`sqlite:///rel.db` and `sqlite:////abs.db` (SQLAlchemy URLs, as Parsl takes) or a path."""
    if argument.startswith("sqlite://"):
        rest = argument[len("sqlite://") :]
        if not rest.startswith("/") or rest == "/":
            raise DatabaseNotFound(
                f"{argument!r} is not a database URL of the form sqlite:///relative.db or "
                "sqlite:////absolute/path.db"
            )
        rest = urllib.parse.unquote(rest[1:])  # drop the one slash that separates host/path
        path = Path(rest)
    else:
        path = Path(argument).expanduser()
    return path if path.is_absolute() else cwd / path


def locate_database(argument: str | None, cwd: Path | None = None) -> LocatedDatabase:
    """The database to open: the argument, else monitoring.db, else runinfo/monitoring.db."""
    cwd = cwd or Path.cwd()
    if argument:
        path = path_from_argument(argument, cwd)
        if not path.is_file():
            raise DatabaseNotFound(f"no monitoring database at {path}")
        return LocatedDatabase(path, f"opening {path}")
    for name in DEFAULT_NAMES:
        candidate = cwd / name
        if candidate.is_file():
            return LocatedDatabase(candidate, f"no database given; opening ./{name}")
    raise DatabaseNotFound(
        f"no database given and neither ./monitoring.db nor ./runinfo/monitoring.db exists "
        f"in {cwd}; pass the path of a monitoring database"
    )


def open_readonly(path: Path | str, timeout_s: float = 5.0) -> sqlite3.Connection:
    """A read-only connection; never creates the file."""
    path = Path(path)
    if not path.is_file():
        raise DatabaseNotFound(f"no monitoring database at {path}")
    uri = "file:" + urllib.parse.quote(str(path.resolve())) + "?mode=ro"
    if nothing_to_recover(path):
        # No writer's log to read: open the file as it is, creating nothing beside it (a
        # plain read-only open of a WAL database leaves empty -wal and -shm files behind).
        uri += "&immutable=1"
    try:
        conn = sqlite3.connect(uri, uri=True, timeout=timeout_s, check_same_thread=False)
        conn.execute("PRAGMA query_only = 1")
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.DatabaseError as exc:
        raise DatabaseNotFound(f"{path} is not a readable SQLite database ({exc})") from exc
    return conn


def nothing_to_recover(path: Path) -> bool:
    """True when the database file alone is the whole database: no write-ahead log with
    content (a live or killed writer's) and no rollback journal (a hot one after a crash)."""
    for suffix in ("-wal", "-journal"):
        try:
            if os.stat(str(path) + suffix).st_size:
                return False
        except FileNotFoundError:
            continue
        except OSError:
            return False
    return True


def is_busy(error: BaseException) -> bool:
    """True for SQLite's 'another connection holds the lock' errors (worth retrying). Any
    exception is accepted: the writer asks it of an error's ``__cause__``."""
    text = str(error).lower()
    return isinstance(error, sqlite3.OperationalError) and ("locked" in text or "busy" in text)


def retry_busy(action: Callable[[], T], attempts: int = BUSY_ATTEMPTS) -> T:
    """Run a read, retrying while a writer holds a lock (rollback-journal writers, checkpoints)."""
    for attempt in range(attempts):
        try:
            return action()
        except sqlite3.OperationalError as exc:
            if not is_busy(exc) or attempt == attempts - 1:
                raise
            time.sleep(BUSY_PAUSE_S * (attempt + 1))
    raise AssertionError("unreachable")


def written_by_taskscope(conn: sqlite3.Connection, info: DatabaseInfo, run_id: str) -> bool:
    """Whether taskscope wrote this run (it has a taskscope_run row).

    A database can hold both kinds: taskscope appends its runs to a Parsl database. The two
    differ in timestamps (taskscope: UTC, Parsl: the host's local time) and in CPU figures
    (taskscope: per try, Parsl: the worker's total), so readers decide per run."""
    if not info.has("taskscope_run"):
        return False
    row = conn.execute("SELECT 1 FROM taskscope_run WHERE run_id = ?", (run_id,)).fetchone()
    return row is not None


def run_convention(conn: sqlite3.Connection, info: DatabaseInfo, run_id: str) -> str:
    """The timestamp convention of one run's rows: "utc" or "local"."""
    return "utc" if written_by_taskscope(conn, info, run_id) else "local"


def describe_database(conn: sqlite3.Connection) -> DatabaseInfo:
    """Which tables exist and which timestamp convention the rows use."""
    tables = frozenset(
        row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
    )
    convention, version = "local", None
    if "taskscope_schema" in tables:
        row = conn.execute(
            "SELECT version, timestamp_convention FROM taskscope_schema "
            "ORDER BY version DESC LIMIT 1"
        ).fetchone()
        if row is not None:
            version, convention = row[0], (row[1] or "utc")
        else:
            convention = "utc"
    return DatabaseInfo(
        tables=tables,
        is_taskscope="taskscope_run" in tables,
        timestamp_convention=convention,
        schema_version=version,
    )
