"""Reading tries for the statistics: run time, app, host and block of each finished try,
over the whole run or over a bounded hashed sample of its tasks."""

from __future__ import annotations

from typing import Any, NamedTuple

from taskscope.store.analysis.context import RunContext
from taskscope.store.analysis_rollup import PLACE_TABLE, rollup_run_key
from taskscope.store.sampling import (
    MAX_LISTED_IDS,
    in_sample,
    indexed_id_range,
    listed_sample,
    sample_stride,
)
from taskscope.store.timestamps import seconds_between_sql

RUN_S = seconds_between_sql("y.task_try_time_running", "y.task_try_time_returned")
INTERNAL_EXECUTORS = ("_taskscope_internal", "_parsl_internal")
# ctx.shared key: (task_id, run_s) of every try not on an internal executor, in table
# order, as the critical path's floor reads them (run_s None without both moments).
TRY_RUN_TIMES = "try_run_times"


class TryTime(NamedTuple):
    """A tuple, not a frozen dataclass: the shared sample makes tens of thousands."""

    task_id: int
    try_id: int
    app: str
    hostname: str | None
    block_id: str | None
    run_s: float
    failed: bool


def failed_try_sql(ctx: RunContext) -> str:
    """SQL true for a failed try row `y` (taskscope: a failure row; Parsl: a fail history)."""
    if ctx.by_taskscope and ctx.has("taskscope_try_failure"):
        return (
            "EXISTS (SELECT 1 FROM taskscope_try_failure f WHERE f.run_id = y.run_id "
            "AND f.task_id = y.task_id AND f.try_id = y.try_id)"
        )
    return "(y.task_fail_history IS NOT NULL AND y.task_fail_history != '')"


SAMPLE_TASKS = 50_000  # the shared sample for medians and ratios: tries of about this many tasks


def sampled_finished_tries(ctx: RunContext) -> tuple[list[TryTime], int]:
    """(finished tries of a hashed sample of about SAMPLE_TASKS tasks, the stride), read once
    per context and shared by the straggler medians and the host slowdowns."""
    cached = ctx.shared.get("sampled_tries")
    if cached is None:
        stride = sample_stride(ctx.run.task_count, SAMPLE_TASKS)
        cached = ctx.shared["sampled_tries"] = (finished_tries(ctx, stride), stride)
    return cached


def finished_tries(ctx: RunContext, stride: int = 1) -> list[TryTime]:
    """Tries with a run time (running and returned recorded), of a 1-in-`stride` hashed
    sample of the run's tasks; join apps' waits on the kernel are left out."""
    columns = (
        f"SELECT y.task_id, y.try_id, t.task_func_name, y.hostname, y.block_id, {RUN_S}, "
        f"{failed_try_sql(ctx)} "
    )
    kept = (
        "AND y.task_try_time_running IS NOT NULL AND y.task_try_time_returned IS NOT NULL "
        "AND y.task_executor NOT IN (:internal1, :internal2)"
    )
    params: dict[str, Any] = {
        "run": ctx.run_id,
        "internal1": INTERNAL_EXECUTORS[0],
        "internal2": INTERNAL_EXECUTORS[1],
    }
    ids = indexed_id_range(ctx.conn, "try", ctx.run_id) if stride > 1 else None
    if ids is not None and len(ids) // stride <= MAX_LISTED_IDS:
        # The sample's tasks listed and probed through taskscope's (run_id, task_id) index,
        # in id order, each task's tries in the index's order: the rows, in the order, of
        # the test on every try below (0.25 s against 0.33 s at 10^6 tries).
        params["ids"] = listed_sample(ids, stride)
        sql = (
            f"{columns}FROM json_each(:ids) AS j CROSS JOIN try y INDEXED BY ix_try_run_task "
            "ON y.run_id = :run AND y.task_id = j.value "
            f"CROSS JOIN task t ON t.run_id = y.run_id AND t.task_id = y.task_id WHERE 1 {kept}"
        )
    else:
        sql = (
            f"{columns}FROM try y JOIN task t ON t.run_id = y.run_id AND t.task_id = y.task_id "
            f"WHERE y.run_id = :run AND {in_sample('y.task_id', stride)} {kept}"
        )
    rows = ctx.conn.execute(sql, params)
    return [
        TryTime(
            task_id,
            try_id,
            app,
            host or None,
            None if block is None or block == "" else str(block),
            run_s if run_s and run_s > 0 else 0.0,  # max(0.0, run_s or 0.0), without a call
            bool(failed),
        )
        for task_id, try_id, app, host, block, run_s, failed in rows
    ]


# (hostname, block_id, user's try) -> tries, as written in the try table. A user's try is one
# whose executor is named and not internal (`task_executor NOT IN (...)` true, as elsewhere).
PlaceCounts = dict[tuple[str | None, str | None, bool], int]


def run_key(ctx: RunContext) -> int | None:
    """The run's key in the writer's analysis totals (store/analysis_rollup.py), or None when
    they do not hold the whole run (Parsl's databases, runs begun by an older taskscope)."""
    if "run_key" not in ctx.shared:
        ctx.shared["run_key"] = rollup_run_key(ctx.conn, ctx.run_id) if ctx.by_taskscope else None
    key: int | None = ctx.shared["run_key"]
    return key


def tries_per_place(ctx: RunContext) -> PlaceCounts:
    """The run's tries counted per host, block and whether an internal executor ran them, read
    once per context and shared by the failure groups (how many hosts the run used) and the
    host health (tries per host and block). From the writer's totals when it kept them, else
    one grouped pass over the tries (1.5-1.9 s at 10^6 tries)."""
    cached: PlaceCounts | None = ctx.shared.get("tries_per_place")
    if cached is None:
        key = run_key(ctx)
        if key is not None:
            # The totals write NULL as '' (key columns cannot be NULL); every reader treats
            # the two alike.
            cached = {
                (host or None, block or None, bool(users)): n
                for host, block, users, n in ctx.conn.execute(
                    f"SELECT hostname, block_id, users, tries FROM {PLACE_TABLE} "
                    "WHERE run_key = ? AND tries > 0",
                    (key,),
                )
            }
        else:
            marks = ",".join("?" * len(INTERNAL_EXECUTORS))
            cached = {
                (host, block, bool(users)): n
                for host, block, users, n in ctx.conn.execute(
                    f"SELECT hostname, block_id, COALESCE(task_executor NOT IN ({marks}), 0), "
                    "COUNT(*) FROM try "
                    "WHERE run_id = ? GROUP BY 1, 2, 3",
                    (*INTERNAL_EXECUTORS, ctx.run_id),
                )
            }
        ctx.shared["tries_per_place"] = cached
    return cached


# (hostname, block_id) -> tries, NULL and '' both None.
Places = dict[tuple[str | None, str | None], int]


def failed_users_tries_per_place(ctx: RunContext) -> Places | None:
    """Failed tries of users' executors per (host, block) from the writer's totals, or None
    when it did not keep them for this run."""
    key = run_key(ctx)
    if key is None:
        return None
    failed: Places = {}
    for host, block, n in ctx.conn.execute(
        f"SELECT hostname, block_id, failed FROM {PLACE_TABLE} "
        "WHERE run_key = ? AND users = 1 AND failed > 0",
        (key,),
    ):
        place = (host or None, block or None)
        failed[place] = failed.get(place, 0) + n
    return failed
