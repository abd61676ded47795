"""The critical path of a run: the chain of tasks that decided when it finished.

Walk back from the task that finished last, each time to the dependency (or joined task)
that finished last, until a task with none. Each step covers the time from its predecessor's
end (the run's start, for the first step) to its own end, split at the recorded moments:

- dependency wait: predecessor done -> the task's first try launched (kernel scheduling, or
  the script submitting the task late; for the first step, everything since the run began);
- earlier failed tries: first try launched -> last try launched;
- waiting for a worker: last try launched -> running, less the dispatch time;
- dispatch: the run's shortest launch-to-start time (a try that found an idle worker: on a
  busy run most tries queue, so a percentile would count queueing as dispatch), at most the
  time it took;
- run: running -> the worker's end of the try;
- return: the worker's end -> the kernel marking the task done.

Boundaries are clamped to be in order, so the steps tile the makespan exactly (run start ->
the last task's end). The floor is the longest path through the dependency graph weighted by
each task's run time (all its tries): the makespan with unlimited workers and no overhead.
"""

from __future__ import annotations

import bisect
import heapq
import operator
import sqlite3
from array import array
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from taskscope.store.analysis.context import RunContext, chunks
from taskscope.store.analysis.tries import TRY_RUN_TIMES, run_key, tries_per_place
from taskscope.store.analysis_rollup import DEPENDS_TABLE, TRY_TIME_TABLE
from taskscope.store.id_lists import id_list
from taskscope.store.sampling import sample_stride, sampled_rows
from taskscope.store.states import FINAL_STATES
from taskscope.store.timestamps import parse_timestamp, seconds_between_sql

DISPATCH_SAMPLE_TRIES = 20_000
MAX_STEPS = 100_000  # a chain longer than this is cut (and says so)
# A component of the path this large (share of the makespan) names the verdict.
VERDICT_SHARE = 0.25
PARTS = ("dependency_wait_s", "failed_tries_s", "worker_wait_s", "dispatch_s", "run_s", "return_s")
_INTERNAL = ("_taskscope_internal", "_parsl_internal")
DEPENDENCY_LISTS = "dependency_lists"  # ctx.shared key of `dependency_lists`
_TASK_ID = operator.itemgetter(0)


@dataclass
class PathStep:
    task_id: int
    app: str
    start: str  # where the step begins: the predecessor's end, or the run's start
    end: str
    tries: int
    dependency_wait_s: float = 0.0
    failed_tries_s: float = 0.0
    worker_wait_s: float = 0.0
    dispatch_s: float = 0.0
    run_s: float = 0.0
    return_s: float = 0.0
    total_s: float = 0.0  # the sum of the parts: end - start


@dataclass
class CriticalPath:
    makespan_s: float | None
    floor_s: float | None  # longest run-time-weighted path: the makespan with unlimited workers
    tasks: list[PathStep]
    totals: dict[str, float] = field(default_factory=dict)
    verdict: str = ""
    truncated: bool = False  # the chain was longer than MAX_STEPS


@dataclass(frozen=True)
class _Task:
    task_id: int
    app: str
    depends: list[int]
    invoked: str | None
    returned: str | None


def _seconds(a: datetime, b: datetime) -> float:
    return max(0.0, (b - a).total_seconds())


def _task_rows(conn: sqlite3.Connection, run_id: str, ids: Iterable[int]) -> dict[int, _Task]:
    found = {}
    for chunk in chunks(ids):
        marks = ",".join("?" * len(chunk))
        for task_id, app, depends, invoked, returned in conn.execute(
            "SELECT task_id, task_func_name, task_depends, task_time_invoked, task_time_returned "
            f"FROM task WHERE run_id = ? AND task_id IN ({marks})",
            (run_id, *chunk),
        ):
            found[task_id] = _Task(task_id, app, id_list(depends), invoked, returned)
    return found


def _tries(conn: sqlite3.Connection, run_id: str, task_id: int) -> list[tuple[Any, ...]]:
    return conn.execute(
        "SELECT try_id, task_try_time_launched, task_try_time_running, task_try_time_returned, "
        "task_joins FROM try WHERE run_id = ? AND task_id = ? ORDER BY try_id",
        (run_id, task_id),
    ).fetchall()


def typical_dispatch_s(ctx: RunContext) -> float:
    """The shortest launched -> running over (a hashed sample of) the run's tries: what a try
    that found an idle worker waited. The sample's tries are probed through taskscope's
    (run_id, task_id) index where there is one, instead of testing every try of the run."""
    wait = seconds_between_sql("y.task_try_time_launched", "y.task_try_time_running")
    stride = sample_stride(ctx.run.task_count, DISPATCH_SAMPLE_TRIES)
    params: dict[str, Any] = {
        "run": ctx.run_id,
        "internal1": _INTERNAL[0],
        "internal2": _INTERNAL[1],
    }
    row = ctx.conn.execute(
        f"SELECT MIN(w) FROM (SELECT {wait} AS w "
        f"FROM {sampled_rows(ctx.conn, 'try', 'y', ctx.run_id, stride, params)} "
        "AND y.task_try_time_running IS NOT NULL "
        "AND y.task_executor NOT IN (:internal1, :internal2)) WHERE w >= 0",
        params,
    ).fetchone()
    return row[0] if row and row[0] is not None else 0.0


def last_finished_task(ctx: RunContext) -> int | None:
    """The task with the latest task_time_returned. On taskscope's databases the status
    index by time finds it from the run's latest final-state rows; otherwise (or if those
    rows do not name it) a pass over the run's tasks."""
    conn = ctx.conn
    indexed = ctx.has("status") and any(
        row[1] == "ix_status_run_time" for row in conn.execute("PRAGMA index_list(status)")
    )
    if indexed:
        recent = {
            task_id
            for task_id, state in conn.execute(
                "SELECT task_id, task_status_name FROM status WHERE run_id = ? "
                "ORDER BY timestamp DESC LIMIT 200",
                (ctx.run_id,),
            )
            if state in FINAL_STATES
        }
        if recent:
            marks = ",".join("?" * len(recent))
            candidate = conn.execute(
                f"SELECT task_id, task_time_returned FROM task WHERE run_id = ? AND task_id IN "
                f"({marks}) AND task_time_returned IS NOT NULL "
                "ORDER BY task_time_returned DESC, task_id DESC LIMIT 1",
                (ctx.run_id, *recent),
            ).fetchone()
            # Confirmed if no other task has a status row after it returned: a task that
            # returned later has its final state's row later still. (The candidate's own
            # final row is stamped a few µs after its task_time_returned, so counting it
            # sent every taskscope run to the scan: 0.34 s at 10^6 tasks.)
            if (
                candidate is not None
                and conn.execute(
                    "SELECT 1 FROM status WHERE run_id = ? AND timestamp > ? AND task_id != ? "
                    "LIMIT 1",
                    (ctx.run_id, candidate[1], candidate[0]),
                ).fetchone()
                is None
            ):
                return int(candidate[0])
    row = conn.execute(
        "SELECT task_id FROM task WHERE run_id = ? AND task_time_returned IS NOT NULL "
        "ORDER BY task_time_returned DESC, task_id DESC LIMIT 1",
        (ctx.run_id,),
    ).fetchone()
    return row[0] if row else None


def _split(
    step: PathStep,
    seg_start: datetime,
    tries: list[tuple[Any, ...]],
    end: datetime,
    dispatch: float,
) -> None:
    """Fill in `step`'s parts from its tries' moments, clamped into order."""
    moments = [(parse_timestamp(t[1]), parse_timestamp(t[2]), parse_timestamp(t[3])) for t in tries]
    launched = [m[0] for m in moments if m[0] is not None]
    first_launch = launched[0] if launched else None
    last = moments[-1] if moments else (None, None, None)
    bounds = [seg_start]
    for moment in (first_launch, last[0], last[1], last[2], end):
        previous = bounds[-1]
        bounds.append(previous if moment is None else min(max(previous, moment), end))
    bounds[-1] = max(bounds[-2], end)
    step.dependency_wait_s = _seconds(bounds[0], bounds[1])
    step.failed_tries_s = _seconds(bounds[1], bounds[2])
    queued = _seconds(bounds[2], bounds[3])
    step.dispatch_s = min(queued, dispatch)
    step.worker_wait_s = queued - step.dispatch_s
    step.run_s = _seconds(bounds[3], bounds[4])
    step.return_s = _seconds(bounds[4], bounds[5])
    if last[1] is None and moments:
        # No running time recorded (a join app waiting on the kernel, a lost worker): what
        # came after the launch is neither queueing nor run time we can tell apart.
        step.run_s += step.worker_wait_s + step.dispatch_s
        step.worker_wait_s = step.dispatch_s = 0.0


def critical_path(
    ctx: RunContext, *, with_floor: bool = True, with_dispatch: bool = True
) -> CriticalPath:
    """The chain, its steps split into `PARTS`, and (`with_floor`) the floor. Without
    `with_dispatch` the run's typical dispatch (a sample of 20,000 tries) is not read and
    counts as waiting for a worker: the steps, their ends and totals are the same, which is
    all the overlays on the DAG and the timeline draw."""
    began = parse_timestamp(ctx.run.time_began)
    last = last_finished_task(ctx) if ctx.has("task") else None
    if began is None or last is None:
        return CriticalPath(None, None, [], verdict="no task has finished yet")
    conn, run_id = ctx.conn, ctx.run_id
    dispatch = typical_dispatch_s(ctx) if with_dispatch and ctx.has("try") else 0.0
    chain: list[tuple[_Task, list[tuple[Any, ...]]]] = []
    current = _task_rows(conn, run_id, [last]).get(last)
    seen: set[int] = set()
    truncated = False
    while current is not None and current.task_id not in seen:
        if len(chain) >= MAX_STEPS:
            truncated = True
            break
        seen.add(current.task_id)
        tries = _tries(conn, run_id, current.task_id) if ctx.has("try") else []
        chain.append((current, tries))
        candidates = set(current.depends)
        for attempt in tries:
            candidates.update(id_list(attempt[4]))
        candidates -= seen
        rows = _task_rows(conn, run_id, candidates)
        finished = [t for t in rows.values() if parse_timestamp(t.returned) is not None]
        if not finished:
            break
        current = max(finished, key=lambda t: (parse_timestamp(t.returned), t.task_id))
    chain.reverse()
    end_of_run = parse_timestamp(chain[-1][0].returned)
    assert end_of_run is not None
    steps = []
    seg_start = began
    for task, tries in chain:
        end = max(parse_timestamp(task.returned) or seg_start, seg_start)
        step = PathStep(task.task_id, task.app, _text(seg_start), _text(end), len(tries))
        _split(step, seg_start, tries, end, dispatch)
        step.total_s = sum(getattr(step, part) for part in PARTS)
        steps.append(step)
        seg_start = end
    makespan = _seconds(began, max(end_of_run, began))
    totals = {part: sum(getattr(s, part) for s in steps) for part in PARTS}
    floor = longest_run_weighted_path(ctx) if with_floor else None
    return CriticalPath(
        makespan, floor, steps, totals, _verdict(makespan, floor, totals), truncated
    )


def _text(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S.%f")


def _verdict(makespan: float, floor: float | None, totals: dict[str, float]) -> str:
    if makespan <= 0:
        return "the run took no measurable time"
    share = {part: value / makespan for part, value in totals.items()}
    overhead = share["dependency_wait_s"] + share["dispatch_s"] + share["return_s"]
    floor_text = f"; with unlimited workers it would take at least {floor:.1f} s" if floor else ""
    candidates = [
        (
            share["worker_wait_s"],
            (
                f"worker-bound: {share['worker_wait_s']:.0%} of the critical "
                "path waited for a worker (more workers would shorten the run)"
            ),
        ),
        (
            share["failed_tries_s"],
            (
                f"retry-bound: {share['failed_tries_s']:.0%} of the critical "
                "path went to tries that failed"
            ),
        ),
        (
            overhead,
            (
                f"overhead-bound: {overhead:.0%} of the critical path went to scheduling, "
                "dispatch and returning results, not to running tasks"
            ),
        ),
    ]
    value, text = max(candidates, key=lambda c: c[0])
    if value >= VERDICT_SHARE:
        return text + floor_text
    return (
        f"dependency-bound: {share['run_s']:.0%} of the critical path is the run time of "
        "a chain of dependent tasks; more workers would not help" + floor_text
    )


def longest_run_weighted_path(ctx: RunContext) -> float | None:
    """The longest path through dependencies and joins, each task weighted by the run time of
    all its tries (running -> returned; a join app's own wait for what it joined is not work):
    the makespan with unlimited workers."""
    if not (ctx.has("task") and ctx.has("try")):
        return None
    runs = _run_times(ctx)
    if not runs.count:
        return None
    depends_rows = dependency_lists(ctx)
    joins = _joins(ctx)
    if joins:
        depends_rows = _with_joins(depends_rows, joins)
    low, high = runs.low, runs.high
    if depends_rows:  # by task id
        low, high = min(low, depends_rows[0][0]), max(high, depends_rows[-1][0])
    if low >= 0 and high < 4 * runs.count + 1000:
        best = array("d", bytes(8 * (high + 1)))
        for task_id, seconds in runs.positive():
            best[task_id] += seconds
        # The usual case: ids are dense and every task depends only on tasks submitted
        # before it, so one pass in id order over the tasks that have dependencies sees each
        # dependency's longest path first (everything else's is its own weight).
        in_order = True
        for task_id, text in depends_rows:
            # `_ids` inlined, with one and two dependencies (most tasks) parsed without a
            # split and added without a list: this loop runs once per task with dependencies
            # (0.34 s at 10^6, 0.43 s with a tuple per task). Paths are never negative, so
            # one dependency's path is the longest, and the larger of two is.
            first, comma, rest = text.partition(",")
            try:
                if not comma:
                    dep = int(first)
                    if dep >= task_id or dep < 0:
                        in_order = False
                        break
                    best[task_id] += best[dep]
                    continue
                if "," not in rest:
                    one, two = int(first), int(rest)
                    if one >= task_id or one < 0 or two >= task_id or two < 0:
                        in_order = False
                        break
                    path_one, path_two = best[one], best[two]
                    best[task_id] += path_one if path_one >= path_two else path_two  # noqa: FURB136 - no call per task
                    continue
                parsed: Sequence[int] = [int(part) for part in text.split(",")]
            except ValueError:
                parsed = id_list(text)
            longest = 0.0
            for dep in parsed:
                if dep >= task_id or dep < 0:
                    in_order = False
                    break
                path = best[dep]
                if path > longest:
                    longest = path
            if not in_order:
                break
            best[task_id] += longest
        if in_order:
            return max(best)
    tries = runs.every()
    depends: dict[int, list[int]] = {t: id_list(text) for t, text in depends_rows}
    ids = {task_id for task_id, _ in tries} | set(depends)
    weight: dict[int, float] = dict.fromkeys(ids, 0.0)
    for task_id, run_time in tries:
        if run_time is not None and run_time > 0:
            weight[task_id] += run_time
    return _longest_path_any_order(sorted(ids), weight, depends)


@dataclass(frozen=True)
class _RunTimes:
    """(task_id, run_s) of every user's try, in table order (by task and try), and the count
    and range of their task ids (which decide whether the floor's array fits)."""

    count: int
    low: int
    high: int
    every: Callable[[], Sequence[tuple[int, float | None]]]
    positive: Callable[[], Iterable[tuple[int, float]]]  # the tries with run_s > 0, in order


def _run_times(ctx: RunContext) -> _RunTimes:
    """The tries' run times. From the writer's per-try totals (store/analysis_rollup.py) when
    it kept them: the same run-time expression, evaluated when the try was written, in small
    integer-keyed rows, streamed into the floor's array (not a list of a million rows); the
    count is the per-place totals' and the range two probes of the key. Otherwise one pass of
    two numbers a try over the try table, kept for the stragglers (stragglers.py), which
    need the same run times. The test of the executor is left out when the counts per place
    (which the host analyses read anyway) say every try is a user's."""
    conn, run_id = ctx.conn, ctx.run_id
    places = tries_per_place(ctx)
    all_users = all(users for _, _, users in places)
    key = run_key(ctx)
    if key is not None:
        users_test = "" if all_users else " AND users = 1"
        sql = f"SELECT task_id, run_s FROM {TRY_TIME_TABLE} WHERE run_key = ?{users_test}"
        low, high = (
            conn.execute(
                f"SELECT {end}(task_id) FROM {TRY_TIME_TABLE} WHERE run_key = ?", (key,)
            ).fetchone()[0]
            for end in ("MIN", "MAX")
        )
        count = sum(n for (_, _, users), n in places.items() if users or all_users)
        if low is None or high is None:
            count = low = high = 0
        return _RunTimes(
            count,
            low,
            high,
            lambda: conn.execute(sql, (key,)).fetchall(),
            lambda: conn.execute(sql + " AND run_s > 0", (key,)),
        )
    run_s = seconds_between_sql("task_try_time_running", "task_try_time_returned")
    executor_test = "" if all_users else " AND task_executor NOT IN (?, ?)"
    tries = conn.execute(
        f"SELECT task_id, {run_s} FROM try WHERE run_id = ?{executor_test}",
        (run_id,) if all_users else (run_id, *_INTERNAL),
    ).fetchall()
    ctx.shared[TRY_RUN_TIMES] = tries
    ids = list(map(_TASK_ID, tries))
    return _RunTimes(
        len(tries),
        min(ids, default=0),
        max(ids, default=0),
        lambda: tries,
        lambda: ((t, s) for t, s in tries if s is not None and s > 0),
    )


def _joins(ctx: RunContext) -> dict[int, list[int]]:
    """Joined task ids per joining task (from the writer's per-try totals when it kept them)."""
    key = run_key(ctx)
    if key is not None:
        join_rows = ctx.conn.execute(
            f"SELECT task_id, joins FROM {TRY_TIME_TABLE} WHERE run_key = ? AND joins IS NOT NULL",
            (key,),
        )
    else:
        join_rows = ctx.conn.execute(
            "SELECT task_id, task_joins FROM try WHERE run_id = ? AND task_joins IS NOT NULL "
            "AND task_joins != ''",
            (ctx.run_id,),
        )
    joins: dict[int, list[int]] = {}
    for task_id, text in join_rows:
        joins.setdefault(task_id, []).extend(id_list(text))
    return joins


def dependency_lists(ctx: RunContext) -> list[tuple[int, str]]:
    """(task_id, task_depends) of the run's tasks with dependencies, by task id, read once
    per context (the floor and the failure groups' dependency roots share it). Read in the
    table's order (a scan, not a walk of the primary key's index with a table lookup per row)
    and sorted only when that is not already the ids' order (it is when the tasks were
    written as they were submitted)."""
    cached: list[tuple[int, str]] | None = ctx.shared.get(DEPENDENCY_LISTS)
    key = run_key(ctx)
    if cached is None and key is not None:  # the writer's copy, by task id: no sort
        cached = ctx.shared[DEPENDENCY_LISTS] = ctx.conn.execute(
            f"SELECT task_id, depends FROM {DEPENDS_TABLE} WHERE run_key = ?", (key,)
        ).fetchall()
    if cached is None:
        rows = ctx.conn.execute(
            "SELECT task_id, task_depends FROM task NOT INDEXED WHERE run_id = ? "
            "AND task_depends IS NOT NULL AND task_depends != ''",
            (ctx.run_id,),
        ).fetchall()
        ids = [row[0] for row in rows]
        if any(map(operator.ge, ids, ids[1:])):
            rows.sort()
        cached = ctx.shared[DEPENDENCY_LISTS] = rows
    return cached


def _with_joins(rows: list[tuple[int, str]], joins: dict[int, list[int]]) -> list[tuple[int, str]]:
    """`rows` (by task id) with each join task's joined ids added to its dependency list, still
    by task id, without a sort; `rows` (shared) is left as it is. Join tasks are usually few:
    each is found by bisection in a copy (not a pass building every row anew, 0.3 s at 10^6)."""
    merged = list(rows)
    only_joins = []
    for task_id in sorted(joins):
        text = ",".join(map(str, joins[task_id]))
        at = bisect.bisect_left(merged, task_id, key=_TASK_ID)
        if at < len(merged) and merged[at][0] == task_id:
            merged[at] = (task_id, merged[at][1] + "," + text)
        elif text:
            only_joins.append((task_id, text))
    if len(only_joins) * 64 < len(merged):  # a few: each inserted in place
        for row in reversed(only_joins):
            merged.insert(bisect.bisect_left(merged, row[0], key=_TASK_ID), row)
        return merged
    return list(heapq.merge(merged, only_joins, key=_TASK_ID))


def _longest_path_any_order(
    ordered: list[int], weight: dict[int, float], depends: dict[int, list[int]]
) -> float | None:
    """Join apps join tasks submitted after them: an iterative depth-first evaluation (chains
    can be far deeper than Python's recursion limit)."""
    best: dict[int, float] = {}
    for root in ordered:
        if root in best:
            continue
        stack = [(root, False)]
        on_stack = {root}
        while stack:
            task_id, expanded = stack.pop()
            if expanded:
                before = [best.get(d, 0.0) for d in depends.get(task_id, ()) if d in best]
                best[task_id] = weight.get(task_id, 0.0) + (max(before) if before else 0.0)
                on_stack.discard(task_id)
                continue
            stack.append((task_id, True))
            for dep in depends.get(task_id, ()):
                if dep not in best and dep not in on_stack:  # a cycle is ignored, not followed
                    on_stack.add(dep)
                    stack.append((dep, False))
    return max(best.values()) if best else None
