"""When will a live run finish: a small Monte-Carlo simulation of what is left.

What is left: the run's tasks not in a final state, with their dependencies (those already
done are satisfied; those that failed make their dependents dep_fail at no cost). Each
simulation draws every remaining task's run time from the finished successful tries of its
app (apps with none yet borrow from every app's tries), gives a running try the rest of a
draw longer than what it has run so far, and list-schedules the tasks on the run's current
worker capacity in submission order as their dependencies finish. `ITERATIONS` simulations
(fewer for large remainders: at most `SIMULATION_BUDGET` task placements, at least
`MIN_ITERATIONS` simulations) give the P50 and P90 of the time left.

Above `SIMULATED_TASKS_MAX` remaining tasks a simulation per draw costs too much; the forecast
then draws the total work instead (the sum of the remaining tasks' draws) and takes
max(work ÷ workers, the longest remaining dependency chain at median run times): exact for
wide workflows, a lower bound for narrow ones (the `method` says which was used).

Capacity: the workers the node table reports for the run's active pools; without node rows
(a thread pool), the most tries seen running at once.

Each forecast of a taskscope run can be kept (`record_forecast`) in ``taskscope_forecast``,
a table taskscope creates on demand; once the run has ended `forecast_checks` says how far
each one was off.
"""

from __future__ import annotations

import heapq
import random
import sqlite3
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from taskscope.store.analysis.context import RunContext
from taskscope.store.analysis.stats import quantile
from taskscope.store.analysis.tries import INTERNAL_EXECUTORS, RUN_S, failed_try_sql
from taskscope.store.id_lists import id_list
from taskscope.store.states import FINAL_STATES as TERMINAL_STATES
from taskscope.store.timestamps import format_timestamp, now_in_convention, parse_timestamp

ITERATIONS = 200
# Task placements simulated per forecast at most: fewer iterations for a larger remainder.
SIMULATION_BUDGET = 400_000
MIN_ITERATIONS = 20
SIMULATED_TASKS_MAX = 20_000
DRAWS_PER_APP = 2_000  # most recent finished tries kept per app
SEED = 12345  # fixed: the same database gives the same forecast
FORECAST_TABLE = "taskscope_forecast"
FORECAST_DDL = f"""CREATE TABLE IF NOT EXISTS {FORECAST_TABLE} (
	run_id TEXT NOT NULL,
	made_at DATETIME NOT NULL,
	tasks_done INTEGER NOT NULL,
	tasks_left INTEGER NOT NULL,
	p50_finish DATETIME NOT NULL,
	p90_finish DATETIME NOT NULL,
	method TEXT NOT NULL,
	PRIMARY KEY (run_id, made_at)
)"""
RECORD_EVERY_S = 30.0  # at most one stored forecast per run per this many seconds


@dataclass
class Forecast:
    live: bool
    made_at: str | None = None
    tasks_done: int = 0
    tasks_left: int = 0
    running: int = 0
    workers: int = 0
    p50_s: float | None = None  # seconds from `made_at`
    p90_s: float | None = None
    p50_finish: str | None = None
    p90_finish: str | None = None
    method: str | None = None  # "simulation" or "work bound"
    borrowed_apps: list[str] = field(default_factory=list)  # apps with no finished try yet
    note: str | None = None
    checks: list[ForecastCheck] = field(default_factory=list)


@dataclass(frozen=True)
class ForecastCheck:
    """How far one stored forecast was from the run's actual end."""

    made_at: str
    tasks_done: int
    tasks_left: int
    p50_finish: str
    p90_finish: str
    actual_end: str
    error_s: float  # actual end - P50 (positive: the run finished later than forecast)
    within_p90: bool


@dataclass
class _Remaining:
    task_id: int
    app: str
    depends: list[int]
    elapsed_s: float | None  # a running try's time so far


def _durations(ctx: RunContext) -> dict[str, list[float]]:
    by_app: dict[str, list[float]] = defaultdict(list)
    for app, run_s in ctx.conn.execute(
        f"SELECT t.task_func_name, {RUN_S} FROM try y JOIN task t ON t.run_id = y.run_id "
        "AND t.task_id = y.task_id WHERE y.run_id = ? AND y.task_try_time_running IS NOT NULL "
        f"AND y.task_try_time_returned IS NOT NULL AND NOT {failed_try_sql(ctx)} "
        "AND y.task_executor NOT IN (?, ?) ORDER BY y.task_id DESC",
        (ctx.run_id, *INTERNAL_EXECUTORS),
    ):
        values = by_app[app]
        if len(values) < DRAWS_PER_APP and run_s is not None:
            values.append(max(0.0, run_s))
    return by_app


def _remaining(ctx: RunContext, now: datetime) -> tuple[list[_Remaining], set[int], int]:
    """(tasks not final, ids of failed tasks, tasks done)."""
    states = dict(ctx.conn.execute(ctx.states.per_task(), {"run": ctx.run_id}).fetchall())
    failed = {t for t, s in states.items() if s in ("failed", "dep_fail")}
    done = sum(1 for s in states.values() if s in TERMINAL_STATES)
    running_since: dict[int, datetime] = {}
    for task_id, started in ctx.conn.execute(
        "SELECT task_id, MAX(task_try_time_running) FROM try WHERE run_id = ? "
        "AND task_try_time_running IS NOT NULL AND task_try_time_returned IS NULL "
        "GROUP BY task_id",
        (ctx.run_id,),
    ):
        moment = parse_timestamp(started)
        if moment is not None:
            running_since[task_id] = moment
    left = []
    for task_id, app, depends in ctx.conn.execute(
        "SELECT task_id, task_func_name, task_depends FROM task WHERE run_id = ? ORDER BY task_id",
        (ctx.run_id,),
    ):
        if states.get(task_id) in TERMINAL_STATES:
            continue
        since = running_since.get(task_id)
        elapsed = max(0.0, (now - since).total_seconds()) if since is not None else None
        left.append(_Remaining(task_id, app, id_list(depends), elapsed))
    return left, failed, done


def _capacity(ctx: RunContext) -> int:
    workers = 0
    if ctx.has("node"):
        for active, count, _ in ctx.conn.execute(
            "SELECT active, worker_count, MAX(timestamp) FROM node WHERE run_id = ? "
            "GROUP BY hostname, uid, block_id",
            (ctx.run_id,),
        ):
            if active in (1, "1", True, "True", "true"):
                workers += count or 0
    if workers:
        return workers
    return max(1, _peak_concurrency(ctx))


def _peak_concurrency(ctx: RunContext) -> int:
    events = []
    for start, end in ctx.conn.execute(
        "SELECT task_try_time_running, task_try_time_returned FROM try WHERE run_id = ? "
        "AND task_try_time_running IS NOT NULL AND task_executor NOT IN (?, ?) "
        "ORDER BY task_try_time_running DESC LIMIT 100000",
        (ctx.run_id, *INTERNAL_EXECUTORS),
    ):
        events.append((start, 1))
        events.append((end or "9999", -1))
    events.sort(key=lambda e: (e[0], e[1]))
    running = peak = 0
    for _, step in events:
        running += step
        peak = max(peak, running)
    return peak


def _draw(rng: random.Random, values: list[float], elapsed: float | None) -> float:
    if elapsed is None:
        return rng.choice(values)
    longer = [v for v in values if v > elapsed]
    if not longer:  # it has run longer than any finished try: assume it is nearly done
        return 0.0
    return rng.choice(longer) - elapsed


def _simulate(
    tasks: list[_Remaining],
    pools: dict[str, list[float]],
    workers: int,
    failed: set[int],
    rng: random.Random,
) -> float:
    index = {t.task_id: i for i, t in enumerate(tasks)}
    waiting_on = [0] * len(tasks)
    dependents: list[list[int]] = [[] for _ in tasks]
    skipped = [False] * len(tasks)
    for i, task in enumerate(tasks):
        for dep in task.depends:
            if dep in failed:
                skipped[i] = True
            elif dep in index:
                waiting_on[i] += 1
                dependents[index[dep]].append(i)
    ready: list[int] = []  # heap of task positions: submission order
    busy: list[tuple[float, int]] = []  # (finish time, task position)
    clock = 0.0
    for i, task in enumerate(tasks):
        if task.elapsed_s is not None:
            heapq.heappush(busy, (_draw(rng, pools[task.app], task.elapsed_s), i))
        elif waiting_on[i] == 0:
            heapq.heappush(ready, i)
    finished_at = 0.0
    while ready or busy:
        while ready and len(busy) < workers:
            i = heapq.heappop(ready)
            cost = 0.0 if skipped[i] else _draw(rng, pools[tasks[i].app], None)
            heapq.heappush(busy, (clock + cost, i))
        if not busy:
            break
        clock, i = heapq.heappop(busy)
        finished_at = max(finished_at, clock)
        for j in dependents[i]:
            waiting_on[j] -= 1
            if waiting_on[j] == 0 and tasks[j].elapsed_s is None:
                heapq.heappush(ready, j)
    return finished_at


def _work_bound(
    tasks: list[_Remaining],
    pools: dict[str, list[float]],
    workers: int,
    rng: random.Random,
    chain_s: float,
) -> float:
    work = sum(_draw(rng, pools[t.app], t.elapsed_s) for t in tasks)
    return max(work / workers, chain_s)


def _longest_chain(tasks: list[_Remaining], medians: dict[str, float]) -> float:
    """Longest remaining dependency chain at median run times (tasks are in id order, and a
    dependency always has a smaller id than its dependent)."""
    best: dict[int, float] = {}
    for task in tasks:
        before = max((best[d] for d in task.depends if d in best), default=0.0)
        best[task.task_id] = before + medians.get(task.app, 0.0)
    return max(best.values(), default=0.0)


def forecast(ctx: RunContext, iterations: int = ITERATIONS) -> Forecast:
    """The forecast for a live run; for a run that has ended, only the stored checks."""
    checks = forecast_checks(ctx)
    if not ctx.live:
        return Forecast(live=False, checks=checks)
    if not (ctx.has("task") and ctx.has("try") and ctx.has("status")):
        return Forecast(live=True, note="the database has no task, try or status table")
    now = now_in_convention(ctx.run.timestamp_convention)
    left, failed, done = _remaining(ctx, now)
    result = Forecast(
        live=True,
        made_at=format_timestamp(now),
        tasks_done=done,
        tasks_left=len(left),
        running=sum(1 for t in left if t.elapsed_s is not None),
    )
    if not left:
        result.p50_s = result.p90_s = 0.0
        result.p50_finish = result.p90_finish = result.made_at
        result.note = "every task has reached a final state"
        return result
    durations = _durations(ctx)
    pooled = [v for values in durations.values() for v in values]
    if not pooled:
        result.note = "no try has finished yet: nothing to draw durations from"
        return result
    pools: dict[str, list[float]] = {}
    for task in left:
        if task.app not in pools:
            pools[task.app] = durations.get(task.app) or pooled
            if not durations.get(task.app):
                result.borrowed_apps.append(task.app)
    workers = _capacity(ctx)
    result.workers = workers
    rng = random.Random(SEED)
    if len(left) <= SIMULATED_TASKS_MAX:
        result.method = "simulation"
        runs = max(MIN_ITERATIONS, min(iterations, SIMULATION_BUDGET // len(left)))
        outcomes = sorted(_simulate(left, pools, workers, failed, rng) for _ in range(runs))
    else:
        result.method = "work bound"
        medians = {app: quantile(sorted(v), 0.5) or 0.0 for app, v in pools.items()}
        chain = _longest_chain(left, medians)
        outcomes = sorted(
            _work_bound(left, pools, workers, rng, chain) for _ in range(max(20, iterations // 10))
        )
    result.p50_s = quantile(outcomes, 0.5)
    result.p90_s = quantile(outcomes, 0.9)
    result.p50_finish = format_timestamp(now + timedelta(seconds=result.p50_s or 0.0))
    result.p90_finish = format_timestamp(now + timedelta(seconds=result.p90_s or 0.0))
    return result


def _table_exists(conn: sqlite3.Connection) -> bool:
    return (
        conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (FORECAST_TABLE,)
        ).fetchone()
        is not None
    )


def record_forecast(conn: sqlite3.Connection, run_id: str, result: Forecast) -> bool:
    """Keep a live forecast so that the run's end can say how far off it was. `conn` is a
    write connection (`taskscope.store.database.open_side_writer`); at most one forecast per
    run every RECORD_EVERY_S. Returns whether it was stored."""
    if not result.live or result.p50_finish is None or result.made_at is None:
        return False
    conn.execute(FORECAST_DDL)
    last = conn.execute(
        f"SELECT MAX(made_at) FROM {FORECAST_TABLE} WHERE run_id = ?", (run_id,)
    ).fetchone()[0]
    made, previous = parse_timestamp(result.made_at), parse_timestamp(last)
    if (
        made is not None
        and previous is not None
        and (made - previous).total_seconds() < RECORD_EVERY_S
    ):
        return False
    conn.execute(
        f"INSERT OR IGNORE INTO {FORECAST_TABLE} VALUES (?, ?, ?, ?, ?, ?, ?)",
        (
            run_id,
            result.made_at,
            result.tasks_done,
            result.tasks_left,
            result.p50_finish,
            result.p90_finish,
            result.method or "",
        ),
    )
    conn.commit()
    return True


def _actual_end(ctx: RunContext) -> datetime | None:
    if ctx.run.time_completed:
        return parse_timestamp(ctx.run.time_completed)
    row = ctx.conn.execute(
        "SELECT MAX(task_time_returned) FROM task WHERE run_id = ?", (ctx.run_id,)
    ).fetchone()
    return parse_timestamp(row[0]) if row else None


def forecast_checks(ctx: RunContext) -> list[ForecastCheck]:
    """For a run that has ended: each stored forecast against when it really ended."""
    if ctx.live or not _table_exists(ctx.conn):
        return []
    end = _actual_end(ctx)
    if end is None:
        return []
    checks = []
    for made_at, done, left, p50, p90 in ctx.conn.execute(
        f"SELECT made_at, tasks_done, tasks_left, p50_finish, p90_finish FROM {FORECAST_TABLE} "
        "WHERE run_id = ? ORDER BY made_at",
        (ctx.run_id,),
    ):
        p50_at, p90_at = parse_timestamp(p50), parse_timestamp(p90)
        if p50_at is None or p90_at is None:
            continue
        checks.append(
            ForecastCheck(
                made_at,
                done,
                left,
                p50,
                p90,
                format_timestamp(end),
                (end - p50_at).total_seconds(),
                end <= p90_at,
            )
        )
    return checks
