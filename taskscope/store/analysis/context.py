"""What every analysis needs to know about the run it looks at, read once."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from taskscope.store.query import get_run
from taskscope.store.readonly import describe_database, written_by_taskscope
from taskscope.store.records import DatabaseInfo, RunRow
from taskscope.store.task_state import StateSource, state_source

CHUNK = 500  # ids per IN (...) list: well under SQLite's parameter limit


class RunNotFound(LookupError):
    """The run asked for is not in the database."""


@dataclass(frozen=True)
class RunContext:
    conn: sqlite3.Connection
    info: DatabaseInfo
    run: RunRow
    by_taskscope: bool  # taskscope wrote it: UTC times, CPU figures per try, failure rows
    states: StateSource
    # Reads shared by several analyses of the same run (see tries.sampled_finished_tries).
    shared: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def run_id(self) -> str:
        return self.run.run_id

    @property
    def live(self) -> bool:
        return self.run.status == "running"

    def has(self, table: str) -> bool:
        return self.info.has(table)


def run_context(conn: sqlite3.Connection, run_id: str) -> RunContext:
    info = describe_database(conn)
    run = get_run(conn, run_id, with_counts=False)
    if run is None:
        raise RunNotFound(f"no run {run_id!r} in the database")
    return RunContext(
        conn=conn,
        info=info,
        run=run,
        by_taskscope=written_by_taskscope(conn, info, run_id),
        states=state_source(conn, info, run_id, run_tasks=run.task_count),
    )


def chunks(ids: Iterable[int], size: int = CHUNK) -> Iterator[list[int]]:
    items = list(ids)
    for start in range(0, len(items), size):
        yield items[start : start + size]


def task_states(ctx: RunContext, task_ids: Iterable[int]) -> dict[int, str]:
    """The current state of each of `task_ids` (tasks with no state yet are left out)."""
    states: dict[int, str] = {}
    if not ctx.has("status"):
        return states
    for chunk in chunks(sorted(set(task_ids))):
        marks = ",".join("?" * len(chunk))
        states.update(
            (task_id, state)
            for task_id, state in ctx.conn.execute(
                f"SELECT t.task_id, {ctx.states.of_task('t')} FROM task t "
                f"WHERE t.run_id = ? AND t.task_id IN ({marks})",
                (ctx.run_id, *chunk),
            )
            if state is not None
        )
    return states


def tasks_in_state(ctx: RunContext, state: str) -> list[int]:
    """Ids of the run's tasks whose current state is `state` (a final state, or any state
    when taskscope's state table is there)."""
    if not ctx.has("status"):
        return []
    if ctx.states.from_table:
        sql = "SELECT task_id FROM taskscope_task_state WHERE run_id = ? AND state = ?"
    else:
        # Final states never change, so a status row naming one is the task's current state.
        sql = "SELECT DISTINCT task_id FROM status WHERE run_id = ? AND task_status_name = ?"
    return [row[0] for row in ctx.conn.execute(sql, (ctx.run_id, state))]
