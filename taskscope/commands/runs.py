"""`taskscope runs`: the runs in a monitoring database, newest first."""

from __future__ import annotations

import argparse

from taskscope.commands.support import (
    EXIT_OK,
    add_database_argument,
    command_parser,
    open_database,
    print_json,
    seconds_text,
)
from taskscope.store import query


def register(commands: argparse._SubParsersAction) -> None:
    parser = command_parser(
        commands,
        "runs",
        "list the runs in a monitoring database, newest first",
        "taskscope runs                       # ./monitoring.db or ./runinfo/monitoring.db",
        "taskscope runs sqlite:///runinfo/monitoring.db --limit 10",
    )
    add_database_argument(parser)
    parser.add_argument("--limit", type=int, default=50, help="runs to list (default 50)")
    parser.add_argument(
        "--json", action="store_true", help="print one JSON document (the records of /api/runs)"
    )
    parser.set_defaults(handler=cmd_runs)


def cmd_runs(args: argparse.Namespace) -> int:
    with open_database(args.database) as (located, conn):
        page = query.list_runs(conn, limit=args.limit)
    if args.json:
        print_json({"runs": page.items, "total": page.total})
        return EXIT_OK
    if not page.items:
        print(f"no runs in {located.path}")
        return EXIT_OK
    print(
        f"{'run_id':38} {'workflow':20} {'status':10} {'started':19} {'runtime':>10} {'tasks':>7}"
    )
    for run in page.items:
        print(
            f"{run.run_id:38} {(run.workflow_name or '')[:20]:20} {run.status:10} "
            f"{(run.time_began or '')[:19]:19} {seconds_text(run.duration_s):>10} "
            f"{run.task_count:>7}"
        )
    if page.has_next:
        print(f"... {page.total - len(page.items)} more (use --limit)")
    return EXIT_OK
