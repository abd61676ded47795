"""What a table's primary key and indexes begin with, read from the database itself.

taskscope's tables keep Parsl's columns but order some primary keys to serve taskscope's
lookups (schema.py), while databases written by Parsl, or by taskscope before that layout,
keep Parsl's order. Code that chooses a query, or an index to create, by the indexes a
database has asks here by columns rather than by index name, so that one question answers
for both layouts.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence


def primary_key_columns(conn: sqlite3.Connection, table: str) -> list[str]:
    """The columns of `table`'s primary key, in the key's order (empty: no declared key)."""
    rows = conn.execute(f'PRAGMA table_info("{table}")').fetchall()
    return [name for _, name, *_rest, position in sorted(rows, key=lambda r: r[5]) if position]


def index_leading_with(conn: sqlite3.Connection, table: str, columns: Sequence[str]) -> str | None:
    """The name of an index of `table` (its primary key's automatic index included) whose
    first columns are `columns` in that order, or None. Partial indexes do not count: they
    hold only some of the rows."""
    wanted = list(columns)
    for _, name, _unique, _origin, partial in conn.execute(f'PRAGMA index_list("{table}")'):
        if partial:
            continue
        indexed = [row[2] for row in conn.execute(f'PRAGMA index_info("{name}")')]
        if indexed[: len(wanted)] == wanted:
            return str(name)
    return None


def walk_task_key_in_id_order(conn: sqlite3.Connection) -> bool:
    """Whether a run's tasks in id order are best read by walking an index led by task_id
    (Parsl's task key, (task_id, run_id)) among the other runs' entries: there is one, and
    no index led by (run_id, task_id) that makes them a range of their own."""
    return (
        index_leading_with(conn, "task", ["task_id"]) is not None
        and index_leading_with(conn, "task", ["run_id", "task_id"]) is None
    )
