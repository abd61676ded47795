"""`taskscope`: terminal commands over a monitoring database (through the query layer)."""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

from taskscope.commands.support import EXIT_USAGE, CliError, run_handler, select_run
from taskscope.store import query
from taskscope.store.readonly import locate_database, open_readonly
from taskscope.store.states import LIFECYCLE_ORDER

# Commands that live in their own module under taskscope/commands/, each with register()
# (see taskscope/commands/__init__.py); one line per module.
COMMAND_MODULES: tuple[str, ...] = (
    "taskscope.commands.analyze",
    "taskscope.commands.diff",
    "taskscope.commands.report",
    "taskscope.commands.export",
    "taskscope.commands.top",
    "taskscope.commands.recover",
)


def _version() -> str:
    from importlib import metadata

    try:
        return metadata.version("taskscope")
    except metadata.PackageNotFoundError:
        return "unknown"


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}s"


def cmd_runs(args: argparse.Namespace) -> int:
    located = locate_database(args.database, Path.cwd())
    conn = open_readonly(located.path)
    try:
        page = query.list_runs(conn, limit=args.limit)
    finally:
        conn.close()
    if not page.items:
        print(f"no runs in {located.path}")
        return 0
    print(f"{'run_id':38} {'workflow':20} {'status':10} {'started':19} {'runtime':>10} {'tasks':>7}")
    for run in page.items:
        print(f"{run.run_id:38} {(run.workflow_name or '')[:20]:20} {run.status:10} "
              f"{(run.time_began or '')[:19]:19} {_seconds(run.duration_s):>10} {run.task_count:>7}")
    if page.has_next:
        print(f"... {page.total - len(page.items)} more (use --limit)")
    return 0


def cmd_tasks(args: argparse.Namespace) -> int:
    if args.state is not None and args.state not in LIFECYCLE_ORDER:
        raise CliError(f"unknown state {args.state!r}; states are: {', '.join(LIFECYCLE_ORDER)}",
                       EXIT_USAGE)
    located = locate_database(args.database, Path.cwd())
    conn = open_readonly(located.path)
    try:
        run_id = select_run(conn, args.run, str(located.path)).run_id  # a unique prefix will do
        page = query.list_tasks(conn, run_id, app=args.app, state=args.state, limit=args.limit)
    finally:
        conn.close()
    print(f"{'task':>7} {'app':24} {'state':14} {'duration':>10} {'tries':>5} host")
    for task in page.items:
        print(f"{task.task_id:>7} {task.app[:24]:24} {task.state:14} "
              f"{_seconds(task.duration_s):>10} {task.tries:>5} {task.hostname or '-'}")
    print(f"{len(page.items)} of {page.total} tasks")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="taskscope", description="taskscope terminal tools")
    parser.add_argument("--version", action="version", version=f"taskscope {_version()}")
    commands = parser.add_subparsers(dest="command")
    runs = commands.add_parser("runs", help="list the runs in a monitoring database")
    runs.add_argument("database", nargs="?", help="database path or sqlite:/// URL")
    runs.add_argument("--limit", type=int, default=50)
    runs.set_defaults(handler=cmd_runs)
    tasks = commands.add_parser("tasks", help="list the tasks of a run")
    tasks.add_argument("database", help="database path or sqlite:/// URL")
    tasks.add_argument("run", help="run id, or any unique prefix of one")
    tasks.add_argument("--state", help="only tasks whose current state is this (e.g. failed)")
    tasks.add_argument("--app", help="only tasks of this app")
    tasks.add_argument("--limit", type=int, default=100)
    tasks.set_defaults(handler=cmd_tasks)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 0
    return run_handler(args.handler, args)


if __name__ == "__main__":
    sys.exit(main())
