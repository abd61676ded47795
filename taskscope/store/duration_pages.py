"""A page of a run's tasks sorted by duration, read by walking the (run_id, duration) index
of the writer's ``taskscope_task_state`` instead of computing and sorting the duration of
every matching task.

The index's entries are (run_id, duration, task_id): in the order of the fallback's
``ORDER BY duration ASC, task_id`` (SQLite puts NULL, a task not yet returned, first).
Descending, ties stay in ascending id order, which SQLite gets by sorting each run of equal
durations as the walk meets it. A page past the middle is read from the other end in the
reverse order and turned round (store/page_ends.py). Filters the index cannot test (the app
on the task's row, the state on the state row) cost a row lookup per task walked:
`run tasks / matching tasks` per match, so the walk is chosen only where it reads fewer
rows than a sort would.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from taskscope.store.id_pages import WALK_ROWS
from taskscope.store.page_ends import PageSpan
from taskscope.store.task_state import STATE_TABLE

DURATION_INDEX = "ix_task_state_run_duration"


def durations_kept(conn: sqlite3.Connection, run_id: str) -> bool:
    """Whether the writer keeps the run's task durations in the state table: the column and
    its index exist (a file from an older writer gets the column, not its runs' figures) and
    one of the run's tasks has one. A run none of whose tasks has returned yet reads as
    not kept, and is sorted by the fallback (all its durations are NULL)."""
    indexes = {row[1] for row in conn.execute(f"PRAGMA index_list({STATE_TABLE})")}
    if DURATION_INDEX not in indexes:
        return False
    row = conn.execute(
        f"SELECT 1 FROM {STATE_TABLE} WHERE run_id = ? AND duration IS NOT NULL LIMIT 1",
        (run_id,),
    ).fetchone()
    return row is not None


def duration_page(
    conn: sqlite3.Connection,
    run_id: str,
    *,
    app: str | None,
    state: str | None,
    total: int,
    run_tasks: int,
    descending: bool,
    offset: int,
    limit: int,
) -> list[int] | None:
    """The ids of the page of the run's tasks (of `app`, in `state`, when given) in duration
    order, ties by ascending id; None when the walk would read more rows than sorting the
    matching tasks. `total`: how many tasks match (exact); `run_tasks`: the run's tasks.
    `state` must be one the state table holds for every task in it (a final state)."""
    if total == 0 or offset >= total:
        return []
    page = PageSpan(total, offset, limit)
    if (app is not None or state is not None) and page.nearer * run_tasks > WALK_ROWS * total:
        return None
    joined = (
        "CROSS JOIN task t ON t.task_id = z.task_id AND t.run_id = z.run_id "
        "AND t.task_func_name = :app "
        if app is not None
        else ""
    )
    in_state = " AND z.state = :state" if state is not None else ""
    sql = (
        f"SELECT z.task_id FROM {STATE_TABLE} z INDEXED BY {DURATION_INDEX} {joined}"
        f"WHERE z.run_id = :run{in_state} ORDER BY z.duration {{duration}}, z.task_id {{ties}} "
        "LIMIT :limit OFFSET :offset"
    )
    params: dict[str, Any] = {"run": run_id, "app": app, "state": state}
    ahead, back = ("DESC", "ASC") if descending else ("ASC", "DESC")
    if page.from_start:
        rows = conn.execute(
            sql.format(duration=ahead, ties="ASC"), {**params, "limit": limit, "offset": offset}
        ).fetchall()
        return [row[0] for row in rows]
    end = page.mirrored
    rows = conn.execute(
        sql.format(duration=back, ties="DESC"), {**params, "limit": end.limit, "offset": end.offset}
    ).fetchall()
    return [row[0] for row in reversed(rows)]
