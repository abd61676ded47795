"""Comparing two runs of a workflow app by app, with a significance test for every change.

Per app, run A against run B:

- tasks: how many;
- failure rate: tasks that ended failed ÷ tasks that ended; two-sided Fisher exact test;
- duration (task invoked -> returned), run time (running -> returned of successful tries) and
  peak resident memory of each try: medians, and a two-sided Mann-Whitney U test.

A change is flagged a regression when B is worse than A (slower, larger, failing more), the
test's p-value is under `ALPHA` divided by the number of tests made (Bonferroni), and the
change is large enough to matter: medians `MIN_RATIO` times A's or more, or a failure rate at
least `MIN_RATE_INCREASE` higher. Improvements are reported the same way, unflagged.

On large runs each app's values come from a hashed sample of about `SAMPLE_TASKS` tasks.
"""

from __future__ import annotations

import sqlite3
from collections import defaultdict
from dataclasses import dataclass, field

from taskscope.store.analysis.context import RunContext, run_context
from taskscope.store.analysis.stats import mann_whitney_two_sided, median, two_proportions
from taskscope.store.analysis.tries import finished_tries
from taskscope.store.sampling import in_sample, sample_stride
from taskscope.store.states import FAILED_FINAL_STATES, FINAL_STATES
from taskscope.store.timestamps import seconds_between_sql

ALPHA = 0.01
MIN_RATIO = 1.2
MIN_RATE_INCREASE = 0.05
SAMPLE_TASKS = 20_000
METRICS = ("duration_s", "run_s", "peak_rss")


@dataclass(frozen=True)
class MetricChange:
    metric: str  # "failure_rate", "duration_s", "run_s", "peak_rss"
    a: float | None  # the median (or rate) in run A
    b: float | None
    n_a: int
    n_b: int
    p_value: float | None  # None: not enough values to test
    change: str  # "worse", "better" or "same"
    regression: bool


@dataclass
class AppDiff:
    app: str
    tasks_a: int
    tasks_b: int
    changes: list[MetricChange] = field(default_factory=list)

    @property
    def regressions(self) -> list[MetricChange]:
        return [c for c in self.changes if c.regression]


@dataclass
class RunDiff:
    run_a: str
    run_b: str
    workflow_a: str | None
    workflow_b: str | None
    makespan_a_s: float | None
    makespan_b_s: float | None
    apps: list[AppDiff]
    tests: int  # how many tests the Bonferroni correction divides by
    regressions: int
    note: str | None = None


@dataclass
class _RunValues:
    tasks: dict[str, int] = field(default_factory=dict)
    ended: dict[str, int] = field(default_factory=dict)
    failed: dict[str, int] = field(default_factory=dict)
    values: dict[str, dict[str, list[float]]] = field(
        default_factory=lambda: {m: defaultdict(list) for m in METRICS}
    )


def _collect(ctx: RunContext) -> _RunValues:
    conn, run_id = ctx.conn, ctx.run_id
    out = _RunValues()
    stride = sample_stride(ctx.run.task_count, SAMPLE_TASKS)
    out.tasks = dict(
        conn.execute(
            "SELECT task_func_name, COUNT(*) FROM task WHERE run_id = ? GROUP BY 1", (run_id,)
        )
    )
    if ctx.has("status"):
        for app, state, n in conn.execute(
            f"SELECT t.task_func_name, z.state, COUNT(*) FROM ({ctx.states.per_task()} LIMIT -1) "
            "z CROSS JOIN task t ON t.task_id = z.task_id AND t.run_id = :run GROUP BY 1, 2",
            {"run": run_id},
        ):
            if state in FINAL_STATES:
                out.ended[app] = out.ended.get(app, 0) + n
            if state in FAILED_FINAL_STATES:
                out.failed[app] = out.failed.get(app, 0) + n
    duration = seconds_between_sql("task_time_invoked", "task_time_returned")
    for app, seconds in conn.execute(
        f"SELECT task_func_name, {duration} FROM task WHERE run_id = ? "
        f"AND {in_sample('task_id', stride)} AND task_time_returned IS NOT NULL",
        (run_id,),
    ):
        if seconds is not None:
            out.values["duration_s"][app].append(seconds)
    for attempt in finished_tries(ctx, stride):
        if not attempt.failed:
            out.values["run_s"][attempt.app].append(attempt.run_s)
    if ctx.has("resource"):
        for app, peak in conn.execute(
            "SELECT t.task_func_name, r.peak FROM (SELECT task_id, try_id, "
            "MAX(psutil_process_memory_resident) AS peak FROM resource WHERE run_id = :run "
            f"AND {in_sample('task_id', stride)} GROUP BY task_id, try_id) r "
            "JOIN task t ON t.run_id = :run AND t.task_id = r.task_id",
            {"run": run_id},
        ):
            if peak is not None:
                out.values["peak_rss"][app].append(peak)
    return out


def _makespan(ctx: RunContext) -> float | None:
    row = ctx.conn.execute(
        f"SELECT {seconds_between_sql('MIN(task_time_invoked)', 'MAX(task_time_returned)')} "
        "FROM task WHERE run_id = ?",
        (ctx.run_id,),
    ).fetchone()
    return row[0] if row else None


def run_diff(conn: sqlite3.Connection, run_a: str, run_b: str) -> RunDiff:
    """Run B against run A (raises `RunNotFound` if either is missing)."""
    ctx_a, ctx_b = run_context(conn, run_a), run_context(conn, run_b)
    a, b = _collect(ctx_a), _collect(ctx_b)
    apps = sorted(set(a.tasks) | set(b.tasks))
    pending: list[tuple[AppDiff, str, float | None, float | None, int, int, float | None, str]] = []
    diffs = []
    p: float | None  # a test's p-value; None where there are too few values to test
    for app in apps:
        diff = AppDiff(app, a.tasks.get(app, 0), b.tasks.get(app, 0))
        diffs.append(diff)
        ended_a, ended_b = a.ended.get(app, 0), b.ended.get(app, 0)
        if ended_a and ended_b:
            failed_a, failed_b = a.failed.get(app, 0), b.failed.get(app, 0)
            rate_a, rate_b = failed_a / ended_a, failed_b / ended_b
            p = two_proportions(failed_b, ended_b, failed_a, ended_a)
            direction = "worse" if rate_b > rate_a else "better" if rate_b < rate_a else "same"
            big = abs(rate_b - rate_a) >= MIN_RATE_INCREASE
            pending.append(
                (
                    diff,
                    "failure_rate",
                    rate_a,
                    rate_b,
                    ended_a,
                    ended_b,
                    p,
                    direction if big else "same",
                )
            )
        for metric in METRICS:
            va, vb = a.values[metric].get(app, []), b.values[metric].get(app, [])
            ma, mb = median(va), median(vb)
            p = mann_whitney_two_sided(vb, va) if len(va) >= 3 and len(vb) >= 3 else None
            direction = "same"
            if ma is not None and mb is not None:
                if (ma > 0 and mb >= MIN_RATIO * ma) or (ma == 0 and mb > 0):
                    direction = "worse"
                elif mb > 0 and ma >= MIN_RATIO * mb:
                    direction = "better"
            if va or vb:
                pending.append((diff, metric, ma, mb, len(va), len(vb), p, direction))
    tests = sum(1 for item in pending if item[6] is not None)
    level = ALPHA / max(1, tests)
    regressions = 0
    for diff, metric, va_, vb_, n_a, n_b, p, direction in pending:
        significant = p is not None and p < level
        change = direction if significant else "same"
        regression = change == "worse"
        regressions += regression
        diff.changes.append(MetricChange(metric, va_, vb_, n_a, n_b, p, change, regression))
    note = None
    if ctx_a.run.workflow_name != ctx_b.run.workflow_name:
        note = (
            f"the runs are of different workflows ({ctx_a.run.workflow_name!r} and "
            f"{ctx_b.run.workflow_name!r}): only apps with the same name are compared"
        )
    diffs.sort(key=lambda d: (-len(d.regressions), d.app))
    return RunDiff(
        run_a,
        run_b,
        ctx_a.run.workflow_name,
        ctx_b.run.workflow_name,
        _makespan(ctx_a),
        _makespan(ctx_b),
        diffs,
        tests,
        regressions,
        note,
    )
