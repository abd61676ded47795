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

import sqlite3
from array import array
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from taskscope.store.analysis.context import RunContext, chunks, id_list
from taskscope.store.analysis.tries import TRY_RUN_TIMES
from taskscope.store.sampling import in_sample, sample_stride
from taskscope.store.states import FINAL_STATES
from taskscope.store.timestamps import parse_timestamp, seconds_between_sql

DISPATCH_SAMPLE_TRIES = 20_000
MAX_STEPS = 100_000  # a chain longer than this is cut (and says so)
# A component of the path this large (share of the makespan) names the verdict.
VERDICT_SHARE = 0.25
PARTS = ("dependency_wait_s", "failed_tries_s", "worker_wait_s", "dispatch_s", "run_s", "return_s")
_INTERNAL = ("_taskscope_internal", "_parsl_internal")


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
    that found an idle worker waited."""
    wait = seconds_between_sql("task_try_time_launched", "task_try_time_running")
    stride = sample_stride(ctx.run.task_count, DISPATCH_SAMPLE_TRIES)
    row = ctx.conn.execute(
        f"SELECT MIN(w) FROM (SELECT {wait} AS w FROM try WHERE run_id = ? "
        f"AND {in_sample('task_id', stride)} AND task_try_time_running IS NOT NULL "
        "AND task_executor NOT IN (?, ?)) WHERE w >= 0",
        (ctx.run_id, *_INTERNAL),
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
            # Confirmed if no task returned later (an indexed-free check would be the scan).
            if (
                candidate is not None
                and conn.execute(
                    "SELECT 1 FROM status WHERE run_id = ? AND timestamp > ? LIMIT 1",
                    (ctx.run_id, candidate[1]),
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


def critical_path(ctx: RunContext, *, with_floor: bool = True) -> CriticalPath:
    began = parse_timestamp(ctx.run.time_began)
    last = last_finished_task(ctx) if ctx.has("task") else None
    if began is None or last is None:
        return CriticalPath(None, None, [], verdict="no task has finished yet")
    conn, run_id = ctx.conn, ctx.run_id
    dispatch = typical_dispatch_s(ctx) if ctx.has("try") else 0.0
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
    conn, run_id = ctx.conn, ctx.run_id
    run_s = seconds_between_sql("task_try_time_running", "task_try_time_returned")
    # Numbers only, in table order (no sort, no strings): the cheapest full pass over tries,
    # kept for the stragglers (stragglers.py), which need the same run times.
    tries = conn.execute(
        f"SELECT task_id, try_id, {run_s} FROM try WHERE run_id = ? "
        "AND task_executor NOT IN (?, ?)",
        (run_id, *_INTERNAL),
    ).fetchall()
    ctx.shared[TRY_RUN_TIMES] = tries
    if not tries:
        return None
    joins: dict[int, list[int]] = {}
    for task_id, text in conn.execute(
        "SELECT task_id, task_joins FROM try WHERE run_id = ? AND task_joins IS NOT NULL "
        "AND task_joins != ''",
        (run_id,),
    ):
        joins.setdefault(task_id, []).extend(id_list(text))
    depends_rows = conn.execute(
        "SELECT task_id, task_depends FROM task WHERE run_id = ? AND task_depends IS NOT NULL "
        "AND task_depends != '' ORDER BY task_id",
        (run_id,),
    ).fetchall()
    if joins:  # few: fold them into their tasks' dependency lists, keeping id order
        extra = dict(joins)
        merged = []
        for task_id, text in depends_rows:
            if task_id in extra:
                text = text + "," + ",".join(map(str, extra.pop(task_id)))
            merged.append((task_id, text))
        merged.extend((t, ",".join(map(str, ids))) for t, ids in extra.items() if ids)
        merged.sort()
        depends_rows = merged
    task_ids = [t for t, _, _ in tries] + [t for t, _ in depends_rows]
    low, high = min(task_ids), max(task_ids)
    if low >= 0 and high < 4 * len(tries) + 1000:
        best = array("d", bytes(8 * (high + 1)))
        for task_id, _, seconds in tries:
            if seconds is not None and seconds > 0:
                best[task_id] += seconds
        # The usual case: ids are dense and every task depends only on tasks submitted
        # before it, so one pass in id order over the tasks that have dependencies sees each
        # dependency's longest path first (everything else's is its own weight).
        in_order = True
        for task_id, text in depends_rows:
            longest = 0.0
            for dep in _ids(text):
                if dep >= task_id or dep < 0:
                    in_order = False
                    break
                if best[dep] > longest:
                    longest = best[dep]
            if not in_order:
                break
            best[task_id] += longest
        if in_order:
            return max(best)
    depends: dict[int, list[int]] = {t: _ids(text) for t, text in depends_rows}
    ids = {task_id for task_id, _, _ in tries} | set(depends)
    weight: dict[int, float] = dict.fromkeys(ids, 0.0)
    for task_id, _, seconds in tries:
        if seconds is not None and seconds > 0:
            weight[task_id] += seconds
    return _longest_path_any_order(sorted(ids), weight, depends)


def _ids(text: str) -> list[int]:
    try:  # the common form, "3,4": parsed directly; anything else the careful way
        return [int(part) for part in text.split(",")]
    except ValueError:
        return id_list(text)


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
