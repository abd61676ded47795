"""Reading tries for the statistics: run time, app, host and block of each finished try,
over the whole run or over a bounded hashed sample of its tasks."""

from __future__ import annotations

from dataclasses import dataclass

from taskscope.store.analysis.context import RunContext
from taskscope.store.sampling import in_sample, sample_stride
from taskscope.store.timestamps import seconds_between_sql

RUN_S = seconds_between_sql("y.task_try_time_running", "y.task_try_time_returned")
INTERNAL_EXECUTORS = ("_taskscope_internal", "_parsl_internal")
# ctx.shared key: (task_id, try_id, run_s) of every try not on an internal executor, in
# table order, as the critical path's floor reads them (run_s None without both moments).
TRY_RUN_TIMES = "try_run_times"


@dataclass(frozen=True)
class TryTime:
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
    rows = ctx.conn.execute(
        f"SELECT y.task_id, y.try_id, t.task_func_name, y.hostname, y.block_id, {RUN_S}, "
        f"{failed_try_sql(ctx)} FROM try y JOIN task t ON t.run_id = y.run_id "
        "AND t.task_id = y.task_id WHERE y.run_id = ? "
        f"AND {in_sample('y.task_id', stride)} AND y.task_try_time_running IS NOT NULL "
        "AND y.task_try_time_returned IS NOT NULL AND y.task_executor NOT IN (?, ?)",
        (ctx.run_id, *INTERNAL_EXECUTORS),
    )
    return [
        TryTime(
            task_id,
            try_id,
            app,
            host or None,
            None if block in (None, "") else str(block),
            max(0.0, run_s or 0.0),
            bool(failed),
        )
        for task_id, try_id, app, host, block, run_s, failed in rows
    ]


# (hostname, block_id, user's try) -> tries, as written in the try table. A user's try is one
# whose executor is named and not internal (`task_executor NOT IN (...)` true, as elsewhere).
PlaceCounts = dict[tuple[str | None, str | None, bool], int]


def tries_per_place(ctx: RunContext) -> PlaceCounts:
    """The run's tries counted per host, block and whether an internal executor ran them: one
    grouped pass over the tries, read once per context and shared by the failure groups (how
    many hosts the run used) and the host health (tries per host and block): two passes saved."""
    cached: PlaceCounts | None = ctx.shared.get("tries_per_place")
    if cached is None:
        marks = ",".join("?" * len(INTERNAL_EXECUTORS))
        cached = ctx.shared["tries_per_place"] = {
            (host, block, bool(users)): n
            for host, block, users, n in ctx.conn.execute(
                f"SELECT hostname, block_id, COALESCE(task_executor NOT IN ({marks}), 0), "
                "COUNT(*) FROM try "
                "WHERE run_id = ? GROUP BY 1, 2, 3",
                (*INTERNAL_EXECUTORS, ctx.run_id),
            )
        }
    return cached
