"""`taskscope diff DB RUN_A RUN_B [--json]`: what changed between two runs, app by app."""

from __future__ import annotations

import argparse
import dataclasses

from taskscope.commands.analyze import write_json
from taskscope.commands.support import (
    EXIT_OK,
    CliError,
    add_database_argument,
    command_parser,
    open_database,
    select_run,
)
from taskscope.store.analysis.context import RunNotFound
from taskscope.store.analysis.diff import RunDiff, run_diff

METRIC_LABELS = {
    "failure_rate": "failure rate",
    "duration_s": "duration",
    "run_s": "run time",
    "peak_rss": "peak memory",
}


def register(commands: argparse._SubParsersAction) -> None:
    parser = command_parser(
        commands,
        "diff",
        "compare two runs app by app: counts, durations, run times, peak "
        "memory and failure rates, with a significance test and a flag on each regression",
        "taskscope diff monitoring.db 85029df9 4be1 --json",
    )
    add_database_argument(parser, required=True)
    parser.add_argument("run_a", metavar="RUN_A", help="the earlier run (id or unique prefix)")
    parser.add_argument("run_b", metavar="RUN_B", help="the run to compare with it")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.set_defaults(handler=cmd_diff)


def cmd_diff(args: argparse.Namespace) -> int:
    with open_database(args.database) as (located, conn):
        a = select_run(conn, args.run_a, str(located.path))
        b = select_run(conn, args.run_b, str(located.path))
        try:
            result = run_diff(conn, a.run_id, b.run_id)
        except RunNotFound as exc:
            raise CliError(str(exc)) from exc
    if args.json:
        write_json(dataclasses.asdict(result))
    else:
        print_text(result)
    return EXIT_OK


def _value(metric: str, value: float | None) -> str:
    if value is None:
        return "-"
    if metric == "failure_rate":
        return f"{value:.0%}"
    if metric == "peak_rss":
        return f"{value / 2**20:.0f} MiB"
    return f"{value:.2f}s"


def print_text(result: RunDiff) -> None:
    print(f"A {result.run_a} ({result.workflow_a or 'unnamed'})")
    print(f"B {result.run_b} ({result.workflow_b or 'unnamed'})")
    if result.note:
        print(f"note: {result.note}")
    if result.makespan_a_s is not None and result.makespan_b_s is not None:
        print(f"makespan {result.makespan_a_s:.1f}s -> {result.makespan_b_s:.1f}s")
    print(f"{result.regressions} regressions ({result.tests} tests, Bonferroni-corrected)")
    for app in result.apps:
        print(f"  {app.app}: tasks {app.tasks_a} -> {app.tasks_b}")
        for change in app.changes:
            flag = (
                "  REGRESSION"
                if change.regression
                else ("  better" if change.change == "better" else "")
            )
            p = f" (p = {change.p_value:.1e})" if change.p_value is not None else ""
            print(
                f"    {METRIC_LABELS[change.metric]}: {_value(change.metric, change.a)} -> "
                f"{_value(change.metric, change.b)}{p}{flag}"
            )
