"""A run's counts from the writer's per-run totals (``taskscope_app_total``): a few rows per app
instead of a pass over a million tasks. Every function returns None when the writer kept no
totals for the run (Parsl's databases, older taskscope ones): callers fall back to SQL."""

from __future__ import annotations

import sqlite3

from taskscope.store.readonly import describe_database
from taskscope.store.states import FINAL_STATES


def app_totals(conn: sqlite3.Connection, run_id: str) -> dict[str, dict[str, int]] | None:
    """app -> flow state -> tasks (or tries) that entered it."""
    if not describe_database(conn).has("taskscope_app_total"):
        return None
    totals: dict[str, dict[str, int]] = {}
    for app, state, n in conn.execute(
        "SELECT app, state, entered FROM taskscope_app_total WHERE run_id = ?", (run_id,)
    ):
        totals.setdefault(app, {})[state] = n
    return totals or None


def run_task_totals(conn: sqlite3.Connection, run_ids: list[str]) -> dict[str, int]:
    """run -> number of tasks, for the runs among `run_ids` that have totals."""
    if not run_ids or not describe_database(conn).has("taskscope_app_total"):
        return {}
    marks = ",".join("?" * len(run_ids))
    return dict(
        conn.execute(
            f"SELECT run_id, SUM(entered) FROM taskscope_app_total WHERE run_id IN ({marks}) "
            "AND state = 'pending' GROUP BY run_id",
            run_ids,
        ).fetchall()
    )


def current_states(by_state: dict[str, int]) -> dict[str, int]:
    """Tasks in each current state from one app's (or the run's) entry counts: final states
    exactly; of the others, those on a worker (running), handed to an executor (launched),
    and the rest pending."""
    tasks = by_state.get("pending", 0)
    counts = {s: by_state[s] for s in FINAL_STATES if by_state.get(s)}
    tries = by_state.get("launched", 0) + by_state.get("relaunched", 0)
    running = max(0, by_state.get("running", 0) - by_state.get("running_ended", 0))
    launched = max(0, tries - by_state.get("running", 0))
    unfinished = max(0, tasks - sum(counts.values()))
    running, launched = min(running, unfinished), min(launched, max(0, unfinished - running))
    if running:
        counts["running"] = running
    if launched:
        counts["launched"] = launched
    rest = unfinished - running - launched
    if rest:
        counts["pending"] = rest
    return counts


def run_state_counts(conn: sqlite3.Connection, run_id: str) -> dict[str, int] | None:
    totals = app_totals(conn, run_id)
    if totals is None:
        return None
    merged: dict[str, int] = {}
    for by_state in totals.values():
        for state, n in current_states(by_state).items():
            merged[state] = merged.get(state, 0) + n
    return merged


def app_state_counts(
    conn: sqlite3.Connection, run_id: str, app: str | None = None
) -> dict[str, dict[str, int]] | None:
    totals = app_totals(conn, run_id)
    if totals is None:
        return None
    return {
        name: current_states(by_state)
        for name, by_state in totals.items()
        if app is None or name == app
    }


def try_totals(conn: sqlite3.Connection, run_id: str) -> tuple[int, int] | None:
    """(tries, retries) of the run."""
    totals = app_totals(conn, run_id)
    if totals is None:
        return None
    first = sum(s.get("launched", 0) for s in totals.values())
    retries = sum(s.get("relaunched", 0) for s in totals.values())
    return first + retries, retries


def app_run_totals(conn: sqlite3.Connection, run_id: str) -> dict[str, tuple[int, float]]:
    """app -> (ended tries, mean run time on the workers' clocks); {} without totals."""
    if not describe_database(conn).has("taskscope_app_run_total"):
        return {}
    return {
        app: (n, busy / n)
        for app, busy, n in conn.execute(
            "SELECT app, busy_s, tries_ended FROM taskscope_app_run_total WHERE run_id = ?",
            (run_id,),
        )
        if n
    }


def dependents(conn: sqlite3.Connection, run_id: str, task_id: int) -> list[int] | None:
    """Tasks that depend on or join `task_id`, from the writer's table (None without it)."""
    info = describe_database(conn)
    if not info.has("taskscope_dependent") or app_totals(conn, run_id) is None:
        return None
    return [
        r[0]
        for r in conn.execute(
            "SELECT dependent_id FROM taskscope_dependent WHERE run_id = ? AND task_id = ? "
            "ORDER BY dependent_id LIMIT 1000",
            (run_id, task_id),
        )
    ]
