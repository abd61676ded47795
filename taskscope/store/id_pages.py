"""A page of a run's task ids in id order, read by walking an index in that order instead of
sorting every matching task.

Two indexes give a run's tasks in id order: the task primary key (task_id, run_id), and the
(run_id, state) index of the writer's ``taskscope_task_state``, whose entries end with the
task id. A page is then the walk up to its last row, which stops after offset + limit
matches. A page past the middle is read from the other end (descending, and reversed), so
the first and the last pages cost the same (store/page_ends.py). The filter an index
cannot test (the app, on the primary key) costs one row lookup per task walked: about
`run tasks / app tasks` per match, which the writer's per-app totals tell, so the walk is
chosen only where it reads fewer rows than sorting the app's tasks would. A walk of the
primary key also passes the other runs' entries, up to the end of the table from the far
end, so a run of at most SORT_TASKS tasks (cheap to sort) is always sorted.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from taskscope.store.key_order import walk_task_key_in_id_order
from taskscope.store.page_ends import PageSpan
from taskscope.store.task_state import STATE_TABLE

# More row lookups than this for one page and sorting the matching tasks is the better read
# (it looks up each of them once, in the (run_id, app) index's order).
WALK_ROWS = 200_000
# Runs of at most this many tasks have their whole-run pages sorted rather than walked.
SORT_TASKS = 20_000


def _walk_page(
    conn: sqlite3.Connection, sql: str, params: dict[str, Any], page: PageSpan
) -> list[int]:
    """`sql` (ids in ascending order, with {direction}) walked from the nearer end."""
    if page.from_start:
        rows = conn.execute(
            f"{sql.format(direction='ASC')} LIMIT :limit OFFSET :offset",
            {**params, "limit": page.limit, "offset": page.offset},
        ).fetchall()
        return [row[0] for row in rows]
    end = page.mirrored
    rows = conn.execute(
        f"{sql.format(direction='DESC')} LIMIT :limit OFFSET :offset",
        {**params, "limit": end.limit, "offset": end.offset},
    ).fetchall()
    return [row[0] for row in reversed(rows)]


def walked_page(
    conn: sqlite3.Connection,
    run_id: str,
    *,
    app: str | None,
    state: str | None,
    total: int,
    run_tasks: int,
    app_tasks: int | None,
    state_tasks: int | None,
    descending: bool,
    offset: int,
    limit: int,
) -> list[int] | None:
    """The page's ids (ascending, or descending), or None when no walk is cheap enough and
    the caller should sort instead.

    `total`: the tasks that match (exact: the page is counted from the end past the
    middle). `run_tasks`, `app_tasks`, `state_tasks`: the run's tasks, the app's, and the
    run's tasks in `state` (None: not known). `state` is a state the writer's state table
    holds for the run (not 'pending', which also counts tasks without a row)."""
    page = PageSpan(total, offset, limit)
    if descending:  # the same walk from the other end
        end = page.mirrored
        ids = walked_page(
            conn,
            run_id,
            app=app,
            state=state,
            total=total,
            run_tasks=run_tasks,
            app_tasks=app_tasks,
            state_tasks=state_tasks,
            descending=False,
            offset=end.offset,
            limit=end.limit,
        )
        return None if ids is None else ids[::-1]
    params: dict[str, Any] = {"run": run_id, "app": app, "state": state}
    if state is not None:
        # (run_id, state) index entries in task id order; the app checked on the task's row.
        if app is not None and (
            state_tasks is None or total == 0 or page.nearer * state_tasks > WALK_ROWS * total
        ):
            return None
        sql = (
            f"SELECT z.task_id FROM {STATE_TABLE} z "
            + (
                "CROSS JOIN task t ON t.task_id = z.task_id AND t.run_id = z.run_id "
                "AND t.task_func_name = :app "
                if app is not None
                else ""
            )
            + "WHERE z.run_id = :run AND z.state = :state ORDER BY z.task_id {direction}"
        )
        return _walk_page(conn, sql, params, page)
    if app is not None:
        if app_tasks is None or app_tasks == 0 or page.nearer * run_tasks > WALK_ROWS * app_tasks:
            return None
        if run_tasks <= SORT_TASKS or not walk_task_key_in_id_order(conn):
            return None  # as for the whole run, below
        # `+` keeps SQLite on the primary key (task_id, run_id) rather than the app index.
        sql = (
            "SELECT t.task_id FROM task t WHERE +t.run_id = :run "
            "AND +t.task_func_name = :app ORDER BY t.task_id {direction}"
        )
        return _walk_page(conn, sql, params, page)
    # The whole run: the primary key alone (covering), no row lookups at all. The walk
    # also passes the other runs' entries among the run's ids, and from the far end all
    # those beyond them: a small run's last page in a file that also holds a run of 10^6
    # tasks read 1,000,000 entries (0.1-0.2 s of CPU). A run of at most SORT_TASKS tasks is
    # sorted instead, from its own index entries (~0.35 us each).
    if run_tasks <= SORT_TASKS or not walk_task_key_in_id_order(conn):
        return None
    sql = "SELECT t.task_id FROM task t WHERE +t.run_id = :run ORDER BY t.task_id {direction}"
    return _walk_page(conn, sql, params, page)
