"""`taskscope analyze DB [--run RUN] [--json]`: why a run failed and why it was slow."""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import sys
from collections.abc import Iterator

from taskscope.commands.support import (
    EXIT_OK,
    CliError,
    add_database_argument,
    add_run_option,
    command_parser,
    open_run,
)
from taskscope.store.analysis.context import RunNotFound
from taskscope.store.analysis.critical_path import PARTS
from taskscope.store.analysis.report import RunAnalysis, analyze, as_json, keep_forecast
from taskscope.store.analysis.stragglers import K


def register(commands: argparse._SubParsersAction) -> None:
    parser = command_parser(
        commands,
        "analyze",
        "explain a run: failure groups, critical path, stragglers, hosts, "
        "efficiency advice and a forecast for a live run",
        "taskscope analyze runinfo/monitoring.db",
        "taskscope analyze monitoring.db --run 85029df9 --json > analysis.json",
    )
    add_database_argument(parser)
    add_run_option(parser)
    parser.add_argument(
        "--json", action="store_true", help="print one JSON document (see docs/analysis.md)"
    )
    parser.add_argument(
        "--no-record",
        action="store_true",
        help="do not store a live run's forecast in the database (stored "
        "forecasts let the run's end say how far off they were)",
    )
    parser.set_defaults(handler=cmd_analyze)


# The analysis reads most of a large run's pages once: mapped, a page is read in place
# instead of copied by a read() call into SQLite's small cache (0.6-0.9 s less system time
# on 10^6 tasks). Only for this short-lived command: a mapped file cut short under it (a
# VACUUM elsewhere) would be a crash rather than an error in a long-lived dashboard.
MMAP_BYTES = 1 << 40  # as much as SQLite allows (its own limit is 2 GB unless built larger)


@contextlib.contextmanager
def without_cycle_collection() -> Iterator[None]:
    """Python's cycle collector paused: the analysis makes millions of short-lived tuples and a
    few hundred thousand long-lived objects (one per failed try), none in a cycle that
    matters, and the collector walked the long-lived ones again and again as the rows came
    in (0.6-1.2 s of 6 at 10^6 tasks). Only for this short-lived command, as the mapping
    above: a long-lived dashboard keeps the collector running."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def cmd_analyze(args: argparse.Namespace) -> int:
    with without_cycle_collection():
        with open_run(args.database, args.run) as (located, conn, selected):
            conn.execute(f"PRAGMA mmap_size = {MMAP_BYTES}")
            try:
                result = analyze(conn, selected.run_id)
            except RunNotFound as exc:
                raise CliError(str(exc)) from exc
        if not args.no_record:
            keep_forecast(located.path, result)
        if args.json:
            write_json(as_json(result))
        else:
            print_text(result)
    return EXIT_OK


PART_LABELS = {
    "dependency_wait_s": "dependency wait",
    "failed_tries_s": "failed tries",
    "worker_wait_s": "waiting for a worker",
    "dispatch_s": "dispatch",
    "run_s": "run",
    "return_s": "return",
}


def write_json(document: object) -> None:
    """Indented for a person at a terminal; compact otherwise: Python's indenting encoder is
    pure Python, ten times slower than the compact one on a large run's document."""
    if sys.stdout.isatty():
        text = json.dumps(document, indent=2, default=str)
    else:
        text = json.dumps(document, separators=(",", ":"), default=str)
    sys.stdout.write(text + "\n")


def _tasks(ids: list[int], shown: int = 8) -> str:
    text = ", ".join(str(i) for i in ids[:shown])
    return text + (f" and {len(ids) - shown} more" if len(ids) > shown else "")


def print_text(result: RunAnalysis) -> None:
    print(
        f"run {result.run_id} ({result.workflow_name or 'unnamed'}), {result.status}; "
        f"times in {'UTC' if result.timestamp_convention == 'utc' else 'local time'}"
    )
    print()
    current = [g for g in result.failures if g.history != "gone"]
    gone = [g for g in result.failures if g.history == "gone"]
    if not current:
        print("Failures: none")
    else:
        print(f"Failures: {len(current)} groups")
    for g in current:
        outcome = []
        if g.permanent:
            outcome.append(f"{g.permanent} failed for good")
        if g.retried_then_succeeded:
            outcome.append(f"{g.retried_then_succeeded} succeeded on retry")
        if g.unfinished:
            outcome.append(f"{g.unfinished} still retrying")
        history = f" [{g.history}]" if g.history else ""
        print(f"  {g.cause}{history}: {g.signature}")
        unit = "tasks did not run" if g.cause == "dependency" else "failed tries"
        print(
            f"    {g.count} {unit}; tasks {_tasks(g.tasks)}; apps {', '.join(g.apps)}"
            + (f"; {'; '.join(outcome)}" if outcome else "")
        )
        if g.concentration:
            print(f"    {g.concentration}")
        if g.cpu_s_failed >= 0.05:
            print(f"    {g.cpu_s_failed:.1f} CPU s spent on the failed tries")
        if g.example is not None and g.example.stderr_tail:
            print(f"    stderr of task {g.example.task_id}: {g.example.stderr_tail[-1]}")
    for g in gone:
        print(f"  gone since {g.since_run}: {g.cause}: {g.signature} ({g.previous_count} before)")

    print()
    path = result.critical_path
    if not path.tasks:
        print(f"Critical path: {path.verdict}")
    else:
        floor = f", floor {path.floor_s:.1f} s" if path.floor_s is not None else ""
        print(
            f"Critical path: {len(path.tasks)} tasks over a makespan of "
            f"{path.makespan_s:.1f} s{floor}"
        )
        print(f"  {path.verdict}")
        shown = path.tasks if len(path.tasks) <= 12 else path.tasks[:6] + path.tasks[-6:]
        for index, step in enumerate(shown):
            if len(path.tasks) > 12 and index == 6:
                print(f"    ... {len(path.tasks) - 12} more steps")
            parts = [(PART_LABELS[p], getattr(step, p)) for p in PARTS if getattr(step, p) >= 0.005]
            split = ", ".join(f"{label} {value:.2f}s" for label, value in parts)
            print(f"    task {step.task_id} {step.app}: {step.total_s:.2f}s ({split or 'instant'})")
    print()
    if not result.stragglers:
        print("Stragglers: none")
    else:
        print(f"Stragglers: {len(result.stragglers)} tries ran over {K:g}x their app's median")
    for s in result.stragglers[:20]:
        state = " (still running)" if s.running else ""
        print(
            f"  task {s.task_id} try {s.try_id} {s.app}: {s.run_s:.2f}s, {s.ratio:.1f}x the "
            f"median {s.cohort_median_s:.2f}s of {s.cohort_size} tries{state}"
            + (f" on {s.hostname}" if s.hostname else "")
        )
    print()
    flagged = [h for h in result.hosts if h.flagged]
    hosts = [h for h in result.hosts if h.kind == "host"]
    print(f"Hosts: {len(hosts)}, {len(flagged)} flagged")
    for h in flagged:
        print(f"  {h.kind} {h.name}: " + "; ".join(h.reasons))

    print()
    print("Apps:")
    for app in result.apps:
        figures = [f"{app.tries} tries"]
        if app.run_s_median is not None:
            figures.append(f"run median {app.run_s_median:.2f}s, p99 {app.run_s_p99:.2f}s")
        if app.cpu_efficiency is not None:
            figures.append(f"CPU efficiency {app.cpu_efficiency:.0%}")
        if app.peak_rss_p99 is not None:
            figures.append(f"p99 peak memory {app.peak_rss_p99 / 2**20:.0f} MiB")
        print(f"  {app.app}: " + ", ".join(figures))
        if app.request is not None:
            asked = ", ".join(f"{k}={v}" for k, v in sorted(app.request.requested.items()))
            used = []
            if app.request.cpu_efficiency is not None:
                used.append(f"CPU efficiency {app.request.cpu_efficiency:.0%} of the cores")
            if app.request.memory_used is not None:
                used.append(f"p99 peak {app.request.memory_used:.0%} of the memory")
            if app.request.time_used is not None:
                used.append(f"p99 run {app.request.time_used:.0%} of the time")
            print(f"    requested {asked}" + (": " + ", ".join(used) if used else ""))
    if result.advice:
        print()
        print("Advice:")
        for advice in result.advice:
            print(f"  {advice.text}")
    f = result.forecast
    print()
    if f.live and f.p50_s is not None:
        print(
            f"Forecast: {f.tasks_left} tasks left on {f.workers} workers: finishes in "
            f"{f.p50_s:.0f}s (P50, {f.p50_finish}) to {f.p90_s:.0f}s (P90, {f.p90_finish}) "
            f"[{f.method}]"
        )
    elif f.live:
        print(f"Forecast: {f.note}")
    for check in f.checks:
        late = "later" if check.error_s > 0 else "earlier"
        print(
            f"  forecast made at {check.made_at} ({check.tasks_left} tasks left): the run "
            f"ended {abs(check.error_s):.0f}s {late} than its P50"
            + ("" if check.within_p90 else ", after its P90")
        )
