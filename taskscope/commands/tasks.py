"""`taskscope tasks`: a run's tasks, optionally of one app or in one state."""

from __future__ import annotations

import argparse

from taskscope.commands.support import (
    EXIT_OK,
    EXIT_USAGE,
    CliError,
    add_database_argument,
    command_parser,
    open_run,
    print_json,
    seconds_text,
)
from taskscope.store import query
from taskscope.store.states import LIFECYCLE_ORDER


def register(commands: argparse._SubParsersAction) -> None:
    parser = command_parser(
        commands,
        "tasks",
        "list the tasks of a run, optionally of one app or in one state",
        "taskscope tasks monitoring.db                     # the latest run",
        "taskscope tasks monitoring.db 85029df9 --state failed",
        "taskscope tasks monitoring.db --run 85029df9 --app join --limit 20",
    )
    add_database_argument(parser, required=True)
    parser.add_argument(
        "run_positional",
        nargs="?",
        metavar="RUN",
        help="run id or unique prefix of one (default: the latest run)",
    )
    parser.add_argument("--run", "-r", metavar="RUN", help="the same, as an option")
    parser.add_argument("--state", help="only tasks whose current state is this (e.g. failed)")
    parser.add_argument("--app", help="only tasks of this app")
    parser.add_argument("--limit", type=int, default=100, help="tasks to list (default 100)")
    parser.add_argument(
        "--json",
        action="store_true",
        help="print one JSON document (the records of /api/runs/RUN/tasks)",
    )
    parser.set_defaults(handler=cmd_tasks)


def cmd_tasks(args: argparse.Namespace) -> int:
    if args.state is not None and args.state not in LIFECYCLE_ORDER:
        raise CliError(
            f"unknown state {args.state!r}; states are: {', '.join(LIFECYCLE_ORDER)}", EXIT_USAGE
        )
    if args.run and args.run_positional and args.run != args.run_positional:
        raise CliError("give the run once: as RUN or as --run", EXIT_USAGE)
    with open_run(args.database, args.run or args.run_positional) as (_located, conn, selected):
        page = query.list_tasks(
            conn, selected.run_id, app=args.app, state=args.state, limit=args.limit
        )
    if args.json:
        print_json({"run_id": selected.run_id, "tasks": page.items, "total": page.total})
        return EXIT_OK
    print(f"{'task':>7} {'app':24} {'state':14} {'duration':>10} {'tries':>5} host")
    for task in page.items:
        print(
            f"{task.task_id:>7} {task.app[:24]:24} {task.state:14} "
            f"{seconds_text(task.duration_s):>10} {task.tries:>5} {task.hostname or '-'}"
        )
    print(f"{len(page.items)} of {page.total} tasks")
    return EXIT_OK
