"""Stragglers: tries that run far longer than the other tries of their app.

A try is a straggler when its run time (running -> returned; for a try still running, the
time since it started) exceeds `K` times the median run time of its app's successful tries,
and that cohort holds at least `MIN_COHORT` tries. This is Cook's quantile-deviation rule
with the median as the quantile: robust to the stragglers themselves, and silent on apps too
small to say what normal is. Defaults: median, K = 3, cohort >= 10. `MIN_RUN_S` keeps tries
of a few milliseconds (where 3x is scheduling noise) from being flagged.

On large runs the medians come from the tries of a hashed sample of about 50,000 tasks (the
rank error of such a median is well under 1%); which tries exceed the threshold is then
decided over every try, in SQL.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from taskscope.store.analysis.context import RunContext, chunks
from taskscope.store.analysis.stats import median
from taskscope.store.analysis.tries import (
    INTERNAL_EXECUTORS,
    RUN_S,
    TRY_RUN_TIMES,
    run_key,
    sampled_finished_tries,
)
from taskscope.store.analysis_rollup import TRY_TIME_TABLE
from taskscope.store.timestamps import now_in_convention, parse_timestamp

K = 3.0
MIN_COHORT = 10
MIN_RUN_S = 0.05
LIMIT = 1000  # stragglers listed, longest first


@dataclass(frozen=True)
class Straggler:
    task_id: int
    try_id: int
    app: str
    run_s: float
    cohort_median_s: float
    cohort_size: int
    ratio: float
    hostname: str | None
    running: bool  # still running (live): run_s is the time since it started


@dataclass(frozen=True)
class AppCohort:
    app: str
    size: int  # successful tries measured (of the sample, on large runs)
    median_s: float


def cohorts(ctx: RunContext) -> dict[str, AppCohort]:
    """Each app's successful tries: how many and their median run time."""
    sample, stride = sampled_finished_tries(ctx)
    times: dict[str, list[float]] = defaultdict(list)
    for attempt in sample:
        if not attempt.failed:
            times[attempt.app].append(attempt.run_s)
    return {
        app: AppCohort(app, len(values) * stride, median(values) or 0.0)
        for app, values in times.items()
    }


def stragglers(
    ctx: RunContext,
    app_cohorts: dict[str, AppCohort] | None = None,
    k: float = K,
    min_cohort: int = MIN_COHORT,
) -> list[Straggler]:
    """Every straggling try of the run, finished or (live) still running, longest first."""
    if not (ctx.has("try") and ctx.has("task")):
        return []
    app_cohorts = cohorts(ctx) if app_cohorts is None else app_cohorts
    thresholds = {
        app: max(k * c.median_s, MIN_RUN_S)
        for app, c in app_cohorts.items()
        if c.size >= min_cohort
    }
    if not thresholds:
        return []
    long_tries = _long_tries(ctx, min(thresholds.values()))
    apps: dict[int, str] = {}
    for chunk in chunks({row[0] for row in long_tries}):
        marks = ",".join("?" * len(chunk))
        apps.update(
            ctx.conn.execute(
                f"SELECT task_id, task_func_name FROM task WHERE run_id = ? AND task_id IN "
                f"({marks})",
                (ctx.run_id, *chunk),
            ).fetchall()
        )
    found = []
    for task_id, try_id, host, seconds in long_tries:
        app = apps.get(task_id)
        if app in thresholds and seconds > thresholds[app]:
            found.append(_straggler(task_id, try_id, app, host, seconds, app_cohorts[app], False))
    if ctx.live:
        found += _running_stragglers(ctx, app_cohorts, thresholds)
    found.sort(key=lambda s: (-s.ratio, s.task_id, s.try_id))
    return found[:LIMIT]


def _long_tries(ctx: RunContext, shortest: float) -> list[tuple[int, int, str | None, float]]:
    """(task_id, try_id, hostname, run_s) of the tries that ran longer than `shortest`: only
    those are looked up for their app, on a healthy run a handful, not every try. From the
    writer's per-try run times when it kept them, else those the critical path's floor has
    read, else filtered in SQL."""
    key = run_key(ctx)
    read = ctx.shared.get(TRY_RUN_TIMES)
    if key is not None:  # the writer's per-try run times, filtered in SQL
        candidates = {
            task_id
            for (task_id,) in ctx.conn.execute(
                f"SELECT task_id FROM {TRY_TIME_TABLE} WHERE run_key = ? AND users = 1 "
                "AND run_s > ?",
                (key, shortest),
            )
        }
    elif read is None:
        return ctx.conn.execute(
            f"SELECT y.task_id, y.try_id, y.hostname, {RUN_S} AS s FROM try y "
            "WHERE y.run_id = ? AND y.task_executor NOT IN (?, ?) AND s > ?",
            (ctx.run_id, *INTERNAL_EXECUTORS, shortest),
        ).fetchall()
    else:
        candidates = {t for t, s in read if s is not None and s > shortest}
    # The shared rows name the tasks only: their long tries are read again, by task id, with
    # the same run-time expression and tests (so the same tries and figures).
    found = []
    for chunk in chunks(candidates):
        marks = ",".join("?" * len(chunk))
        found += ctx.conn.execute(
            f"SELECT y.task_id, y.try_id, y.hostname, {RUN_S} AS s FROM try y "
            f"WHERE y.run_id = ? AND y.task_id IN ({marks}) AND y.task_executor NOT IN (?, ?) "
            "AND s > ?",
            (ctx.run_id, *chunk, *INTERNAL_EXECUTORS, shortest),
        ).fetchall()
    return found


def _straggler(
    task_id: int,
    try_id: int,
    app: str,
    host: str | None,
    run_s: float,
    cohort: AppCohort,
    running: bool,
) -> Straggler:
    ratio = run_s / cohort.median_s if cohort.median_s > 0 else float("inf")
    return Straggler(
        task_id, try_id, app, run_s, cohort.median_s, cohort.size, ratio, host or None, running
    )


def _running_stragglers(
    ctx: RunContext, app_cohorts: dict[str, AppCohort], thresholds: dict[str, float]
) -> list[Straggler]:
    """Tries of a live run still running for longer than their app's threshold."""
    now = now_in_convention(ctx.run.timestamp_convention)
    found = []
    for task_id, try_id, app, host, running in ctx.conn.execute(
        "SELECT y.task_id, y.try_id, t.task_func_name, y.hostname, y.task_try_time_running "
        "FROM try y JOIN task t ON t.run_id = y.run_id AND t.task_id = y.task_id "
        "WHERE y.run_id = ? AND y.task_try_time_running IS NOT NULL "
        "AND y.task_try_time_returned IS NULL",
        (ctx.run_id,),
    ):
        started = parse_timestamp(running)
        if started is None or app not in thresholds:
            continue
        elapsed = (now - started).total_seconds()
        if elapsed > thresholds[app]:
            found.append(_straggler(task_id, try_id, app, host, elapsed, app_cohorts[app], True))
    return found
