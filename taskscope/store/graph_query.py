"""The dependency graph of a run: per task for a bounded part, or collapsed to apps.

Parsl stores a task's dependencies as comma-separated ids in ``task.task_depends`` and the
tasks a join app waited for in ``try.task_joins``; SQLite's ``json_each`` over ``[ids]`` turns
them into rows without loading the task table into Python. taskscope's writer also keeps the
app-level edge counts in ``taskscope_app_edge``; the app graph reads them when the run has
any, and falls back to the SQL over every task (Parsl's databases, older taskscope ones).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from taskscope.store import totals_query
from taskscope.store.id_lists import id_list
from taskscope.store.key_order import walk_task_key_in_id_order
from taskscope.store.readonly import describe_database
from taskscope.store.records import AppEdge, AppGraph, AppNode, DagEdge, DagNode, TaskGraph
from taskscope.store.task_state import StateSource, app_state_counts, state_source
from taskscope.store.timestamps import seconds_between_sql

APP_EDGE_TABLE = "taskscope_app_edge"
DEPENDENT_TABLE = "taskscope_dependent"
CHUNK = 500
DEFAULT_NODE_LIMIT = 2000
_DURATION = seconds_between_sql("t.task_time_invoked", "t.task_time_returned")
_IDS = "json_each('[' || {col} || ']')"
_VALID = "json_valid('[' || {col} || ']')"


def _chunks(ids: Iterable[int]) -> Iterator[list[int]]:
    items = list(ids)
    for start in range(0, len(items), CHUNK):
        yield items[start : start + CHUNK]


def _state(source: StateSource) -> str:
    return f"COALESCE({source.of_task()}, 'pending')"


def _fetch_nodes(
    conn: sqlite3.Connection, source: StateSource, run_id: str, ids: Iterable[int]
) -> list[tuple[Any, ...]]:
    rows = []
    for chunk in _chunks(ids):
        marks = ",".join("?" * len(chunk))
        rows += conn.execute(
            f"SELECT t.task_id, t.task_func_name, {_state(source)}, {_DURATION}, t.task_depends "
            f"FROM task t WHERE t.run_id = ? AND t.task_id IN ({marks})",
            (run_id, *chunk),
        ).fetchall()
    return rows


# Tasks of one app the primary-key walk may read to find its first `limit` (the rest of the
# run's tasks between them included): above it the app is rare enough that sorting its own
# rows from the (run_id, app) index is the cheaper read.
KEY_WALK_ROWS = 200_000


def _first_task_ids(
    conn: sqlite3.Connection,
    run_id: str,
    app: str | None,
    first_task: int | None,
    limit: int,
    total: int,
) -> list[int]:
    """The first `limit` task ids of the run (of `app`, from `first_task` on), in order.

    Only ids: the state and duration of the chosen tasks are read afterwards by key, since
    SQLite computes every selected column of every row it sorts. One app's tasks come from
    walking the task primary key in id order when the writer's totals say the app is common
    enough (about limit x run / app rows read, no sort); otherwise from the (run_id, app)
    index, sorted."""
    params: dict[str, Any] = {"run": run_id, "limit": limit, "first": int(first_task or 0)}
    after = "AND t.task_id >= :first " if first_task is not None else ""
    if app is None:
        if total > limit and walk_task_key_in_id_order(conn):
            walked = _walked_task_ids(conn, params, first_task is not None)
            if walked is not None:
                return walked
        sql = f"SELECT t.task_id FROM task t WHERE t.run_id = :run {after}ORDER BY t.task_id"
    else:
        params["app"] = app
        sizes = totals_query.app_totals(conn, run_id) or {}
        app_tasks = sizes.get(app, {}).get("pending", 0)
        walk = app_tasks > 0 and limit * total <= KEY_WALK_ROWS * app_tasks
        # `+` keeps SQLite on the primary key (task_id, run_id) instead of the app index.
        sql = (
            f"SELECT t.task_id FROM task t WHERE +t.run_id = :run {after}"
            "AND +t.task_func_name = :app ORDER BY t.task_id"
            if walk
            else f"SELECT t.task_id FROM task t WHERE t.run_id = :run "
            f"AND t.task_func_name = :app {after}ORDER BY t.task_id"
        )
    return [row[0] for row in conn.execute(f"{sql} LIMIT :limit", params)]


# Entries of the task key a walk in id order reads per task it is to find, at most, before
# the walk gives up and the run's tasks are sorted instead.
ID_WALK_ROWS_PER_TASK = 25


def _walked_task_ids(
    conn: sqlite3.Connection, params: dict[str, Any], after: bool
) -> list[int] | None:
    """The run's first `limit` task ids (from `first` on) by walking the task primary key
    (task_id, run_id) in id order, covering: the run's entries among those of the other
    runs that share its ids. None when that takes more than ID_WALK_ROWS_PER_TASK entries
    per task (ids the other runs crowd, or a run that ends before `limit` tasks): sorting
    is then the read. Chosen by the caller, not the query planner: the writer's bounded
    ANALYZE (analysis_limit) can tell it that a run has a few hundred tasks when it has a
    million, and it then sorted the whole run (0.35 s at 10^6 tasks) for 2,000 ids."""
    params = {**params, "budget": ID_WALK_ROWS_PER_TASK * params["limit"]}
    walk = (
        "SELECT t.task_id, t.run_id FROM task t "
        + ("WHERE t.task_id >= :first " if after else "")
        + "ORDER BY t.task_id LIMIT :budget"
    )
    ids = [
        row[0]
        for row in conn.execute(
            f"SELECT w.task_id FROM ({walk}) AS w WHERE w.run_id = :run LIMIT :limit", params
        )
    ]
    if len(ids) == params["limit"]:
        return ids
    # Fewer: the run's complete list if the walk reached the end of the table.
    (walked,) = conn.execute(f"SELECT COUNT(*) FROM ({walk})", params).fetchone()
    return ids if walked < params["budget"] else None


def _context_ids(
    incoming: list[tuple[list[int], int, str]], chosen: set[int], budget: int
) -> list[int]:
    """Up to `budget` tasks outside the chosen ones that they depend on or join, shared out
    fairly: each chosen task's first such task in turn, then each one's second, and so on.
    The run's smallest ids instead gave every context node to the first few chosen tasks
    when each lists many (1,000 gathers of 1,000 tasks each: the first three gathers drawn
    with all their inputs, the other 997 with none), and needed the union of every listed
    id first (a million at that size)."""
    taken: dict[int, None] = {}
    pending = [iter(ids) for ids, _, _ in incoming if ids]
    while pending and len(taken) < budget:
        still = []
        for ids in pending:
            for task_id in ids:
                if task_id not in chosen and task_id not in taken:
                    taken[task_id] = None
                    still.append(ids)
                    break
            if len(taken) >= budget:
                break
        pending = still
    return list(taken)


def task_graph(
    conn: sqlite3.Connection,
    run_id: str,
    *,
    app: str | None = None,
    first_task: int | None = None,
    limit: int = DEFAULT_NODE_LIMIT,
) -> TaskGraph:
    """Up to `limit` tasks (of one app, and/or from `first_task` on) with their edges, plus up
    to `limit` more (at least as many as were chosen) that they directly depend on or join,
    shared out among them (`_context_ids`), so the chosen part is shown in context."""
    info = describe_database(conn)
    if not (info.has("task") and info.has("status")):
        return TaskGraph([], [], 0)
    limit = max(1, min(int(limit), 20000))
    source = state_source(conn, info, run_id)
    total = _run_task_total(conn, run_id)
    ids = _first_task_ids(conn, run_id, app, first_task, limit, total)
    position = {task_id: i for i, task_id in enumerate(ids)}
    rows = sorted(_fetch_nodes(conn, source, run_id, ids), key=lambda row: position[row[0]])
    chosen = {row[0] for row in rows}
    # (sources, target, kind) per chosen task; edge objects are made only for the edges drawn
    # (a join of 1,000 tasks each would otherwise make 10^5 of them to keep a few thousand).
    incoming: list[tuple[list[int], int, str]] = [
        (id_list(depends), task_id, "depends") for task_id, _, _, _, depends in rows
    ]
    if info.has("try"):
        for chunk in _chunks(sorted(chosen)):
            marks = ",".join("?" * len(chunk))
            for task_id, joins in conn.execute(
                f"SELECT DISTINCT task_id, task_joins FROM try WHERE run_id = ? "
                f"AND task_id IN ({marks}) AND task_joins IS NOT NULL AND task_joins != ''",
                (run_id, *chunk),
            ):
                incoming.append((id_list(joins), task_id, "joins"))
    chosen_rows = len(rows)
    rows += _fetch_nodes(
        conn, source, run_id, _context_ids(incoming, chosen, max(0, 2 * limit - len(rows)))
    )
    present = {row[0] for row in rows}
    nodes = [DagNode(task_id, name, state, duration) for task_id, name, state, duration, _ in rows]
    edges = [
        DagEdge(source, target, kind)
        for ids, target, kind in incoming
        for source in sorted(present.intersection(ids))
    ]
    listed = sum(len(ids) for ids, _, _ in incoming)
    return TaskGraph(nodes, list(dict.fromkeys(edges)), total, listed, chosen_rows)


def _stored_app_edges(conn: sqlite3.Connection, run_id: str) -> dict[tuple[str, str], int]:
    """(source app, target app) -> edges of both kinds, as the writer counted them."""
    return {
        (source, target): n
        for source, target, n in conn.execute(
            f"SELECT source_app, target_app, SUM(count) FROM {APP_EDGE_TABLE} "
            "WHERE run_id = ? GROUP BY 1, 2",
            (run_id,),
        )
    }


def _scanned_app_edges(
    conn: sqlite3.Connection, run_id: str, has_try: bool
) -> dict[tuple[str, str], int]:
    """(source app, target app) -> edges of both kinds, from every task's dependencies and
    every join app's joins: one pass over the run's tasks."""
    edge_counts: dict[tuple[str, str], int] = {}
    dep_sql = (
        f"SELECT d.task_func_name, t.task_func_name, COUNT(*) FROM task t, "
        f"{_IDS.format(col='t.task_depends')} j JOIN task d ON d.run_id = t.run_id "
        f"AND d.task_id = j.value WHERE t.run_id = :run AND t.task_depends != '' "
        f"AND {_VALID.format(col='t.task_depends')} GROUP BY 1, 2"
    )
    queries = [dep_sql]
    if has_try:
        queries.append(
            f"SELECT d.task_func_name, t.task_func_name, COUNT(*) FROM "
            f"(SELECT DISTINCT task_id, task_joins FROM try WHERE run_id = :run "
            f"AND task_joins IS NOT NULL AND task_joins != '' "
            f"AND {_VALID.format(col='task_joins')}) y "
            f"JOIN task t ON t.run_id = :run AND t.task_id = y.task_id, "
            f"{_IDS.format(col='y.task_joins')} j "
            f"JOIN task d ON d.run_id = :run AND d.task_id = j.value GROUP BY 1, 2"
        )
    for sql in queries:
        for source, target, n in conn.execute(sql, {"run": run_id}):
            edge_counts[(source, target)] = edge_counts.get((source, target), 0) + n
    return edge_counts


def app_graph(conn: sqlite3.Connection, run_id: str) -> AppGraph:
    """The graph collapsed to one node per app, with task counts by state and edge counts."""
    info = describe_database(conn)
    if not (info.has("task") and info.has("status")):
        return AppGraph([], [], 0)
    kept = totals_query.app_state_counts(conn, run_id)
    counts = kept if kept is not None else app_state_counts(conn, state_source(conn, info, run_id))
    edge_counts = _stored_app_edges(conn, run_id) if info.has(APP_EDGE_TABLE) else {}
    # No stored edges: a writer that keeps totals keeps edges too, so the run has none (yet);
    # only a database without them (Parsl's) needs the pass over every task's dependencies,
    # which during a big live run, before ANALYZE, took a minute.
    if not edge_counts and kept is None:
        edge_counts = _scanned_app_edges(conn, run_id, info.has("try"))
    nodes = [AppNode(app, sum(c.values()), c) for app, c in sorted(counts.items())]
    edges = [AppEdge(s, t, n) for (s, t), n in sorted(edge_counts.items())]
    return AppGraph(nodes, edges, sum(node.tasks for node in nodes))


NEIGHBOURHOOD_DEPTH = 3
NEIGHBOURHOOD_LIMIT = 400


def _parent_edges(
    conn: sqlite3.Connection, run_id: str, ids: list[int]
) -> dict[int, dict[int, str]]:
    """task -> {task it depends on or joins: "depends" or "joins"}, for `ids` (index probes
    of the task and try primary keys)."""
    parents: dict[int, dict[int, str]] = {}
    for chunk in _chunks(ids):
        marks = ",".join("?" * len(chunk))
        for task_id, depends in conn.execute(
            f"SELECT task_id, task_depends FROM task WHERE run_id = ? AND task_id IN ({marks})",
            (run_id, *chunk),
        ):
            parents.setdefault(task_id, {}).update(dict.fromkeys(id_list(depends), "depends"))
        for task_id, joins in conn.execute(
            f"SELECT DISTINCT task_id, task_joins FROM try WHERE run_id = ? "
            f"AND task_id IN ({marks}) AND task_joins IS NOT NULL AND task_joins != ''",
            (run_id, *chunk),
        ):
            parents.setdefault(task_id, {}).update(dict.fromkeys(id_list(joins), "joins"))
    return parents


def _parents(conn: sqlite3.Connection, run_id: str, ids: list[int]) -> dict[int, set[int]]:
    """task -> the tasks it depends on or joins, for `ids`."""
    return {task: set(found) for task, found in _parent_edges(conn, run_id, ids).items()}


def _stored_children(conn: sqlite3.Connection, run_id: str, ids: list[int]) -> dict[int, set[int]]:
    """task -> the tasks that depend on or join it, from the writer's taskscope_dependent:
    one primary-key probe per task."""
    children: dict[int, set[int]] = {}
    for chunk in _chunks(ids):
        marks = ",".join("?" * len(chunk))
        for parent, child in conn.execute(
            f"SELECT task_id, dependent_id FROM {DEPENDENT_TABLE} WHERE run_id = ? "
            f"AND task_id IN ({marks})",
            (run_id, *chunk),
        ):
            children.setdefault(parent, set()).add(child)
    return children


def _scanned_children(
    conn: sqlite3.Connection, run_id: str, ids: list[int], joiners: dict[int, set[int]]
) -> dict[int, set[int]]:
    """task -> the tasks that depend on it, for `ids`, without the writer's table (Parsl's
    databases).

    A dependent is submitted after its dependencies, so it has a larger id: the search is a
    range scan of the task primary key from the smallest id on (``+t.run_id`` keeps SQLite
    from preferring the (run_id, app) index, which would read the whole run). Join edges go
    the other way (a join app's inner tasks are submitted after it); they come from
    `joiners`, read once."""
    children: dict[int, set[int]] = {}
    wanted = set(ids)
    for chunk in _chunks(ids):
        for child, parent in conn.execute(
            f"SELECT t.task_id, j.value FROM task t, {_IDS.format(col='t.task_depends')} j "
            "WHERE t.task_id > :low AND +t.run_id = :run AND t.task_depends != '' "
            f"AND {_VALID.format(col='t.task_depends')} "
            "AND j.value IN (SELECT value FROM json_each(:ids))",
            {"run": run_id, "low": min(chunk), "ids": "[" + ",".join(map(str, chunk)) + "]"},
        ):
            children.setdefault(int(parent), set()).add(child)
    for joiner, joined in joiners.items():
        for parent in joined & wanted:
            children.setdefault(parent, set()).add(joiner)
    return children


def _all_joiners(conn: sqlite3.Connection, run_id: str) -> dict[int, set[int]]:
    """join task -> the tasks it joined, for (up to 100,000 of) the run's join tries: a pass
    over the run's tries, needed only where the writer kept no dependents."""
    joiners: dict[int, set[int]] = {}
    for joiner, joins in conn.execute(
        "SELECT DISTINCT task_id, task_joins FROM try WHERE run_id = ? "
        "AND task_joins IS NOT NULL AND task_joins != '' LIMIT 100000",
        (run_id,),
    ):
        joiners.setdefault(joiner, set()).update(id_list(joins))
    return joiners


def _run_task_total(conn: sqlite3.Connection, run_id: str) -> int:
    """The run's number of tasks: the writer's per-app totals, else an index count."""
    kept = totals_query.run_task_totals(conn, [run_id]).get(run_id)
    if kept is not None:
        return int(kept)
    return int(conn.execute("SELECT COUNT(*) FROM task WHERE run_id = ?", (run_id,)).fetchone()[0])


def _walk(
    start: int, step: Callable[[list[int]], dict[int, set[int]]], depth: int, room: int
) -> set[int]:
    """Breadth-first from `start` through `step(frontier) -> {node: neighbours}`, at most
    `depth` levels and `room` nodes (the nearest first)."""
    seen: set[int] = set()
    frontier = [start]
    for _ in range(depth):
        if not frontier or len(seen) >= room:
            break
        found = step(frontier)
        fresh = sorted({n for node in frontier for n in found.get(node, ())} - seen - {start})
        fresh = fresh[: room - len(seen)]
        seen.update(fresh)
        frontier = fresh
    return seen


def task_neighbourhood(
    conn: sqlite3.Connection,
    run_id: str,
    task_id: int,
    *,
    depth: int = NEIGHBOURHOOD_DEPTH,
    limit: int = NEIGHBOURHOOD_LIMIT,
) -> TaskGraph | None:
    """One task with its ancestors and descendants up to `depth` levels each and `limit`
    tasks in all (half the room for each side, and what one side leaves to the other), with
    the edges between them; None when the task does not exist."""
    info = describe_database(conn)
    if not (info.has("task") and info.has("status")):
        return None
    exists = conn.execute(
        "SELECT 1 FROM task WHERE run_id = ? AND task_id = ?", (run_id, task_id)
    ).fetchone()
    if exists is None:
        return None
    depth = max(1, min(int(depth), 50))
    limit = max(2, min(int(limit), 5000))
    # The writer's dependents table answers "who depends on this task" by probes; without
    # it (Parsl's databases, or a run it did not keep them for) later tasks' dependency
    # lists are scanned, and the run's join tries read once.
    stored = info.has(DEPENDENT_TABLE) and totals_query.app_totals(conn, run_id) is not None
    joiners = {} if stored or not info.has("try") else _all_joiners(conn, run_id)

    def up(frontier: list[int]) -> dict[int, set[int]]:
        return _parents(conn, run_id, frontier)

    def down(frontier: list[int]) -> dict[int, set[int]]:
        if stored:
            return _stored_children(conn, run_id, frontier)
        return _scanned_children(conn, run_id, frontier, joiners)

    half = (limit - 1) // 2
    ancestors = _walk(task_id, up, depth, half)
    descendants = _walk(task_id, down, depth, limit - 1 - len(ancestors))
    if len(ancestors) == half and len(ancestors) + len(descendants) < limit - 1:
        ancestors = _walk(task_id, up, depth, limit - 1 - len(descendants))  # unused room
    chosen = sorted({task_id} | ancestors | descendants)
    source = state_source(conn, info, run_id)
    rows = _fetch_nodes(conn, source, run_id, chosen)
    present = {row[0] for row in rows}
    edges = []
    for child, parents in _parent_edges(conn, run_id, chosen).items():
        for parent in sorted(set(parents) & present):
            edges.append(DagEdge(parent, child, parents[parent]))
    nodes = [DagNode(t, name, state, duration) for t, name, state, duration, _ in rows]
    return TaskGraph(nodes, edges, _run_task_total(conn, run_id))
