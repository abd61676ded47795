"""`taskscope`: terminal commands over a monitoring database (through the query layer).

Each command lives in its own module under `taskscope.commands` (see its ``__init__``) and
shares `taskscope.commands.support`: the same database and run selection everywhere, the
same exit codes, progress on stderr for anything slow.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from taskscope.commands.support import example_epilog, run_handler
from taskscope.version import taskscope_version

# Commands that live in their own module under taskscope/commands/, each with register()
# (see taskscope/commands/__init__.py); one line per module, in the order --help lists them.
COMMAND_MODULES: tuple[str, ...] = (
    "taskscope.commands.runs",
    "taskscope.commands.tasks",
    "taskscope.commands.analyze",
    "taskscope.commands.report",
    "taskscope.commands.export",
    "taskscope.commands.top",
    "taskscope.commands.diff",
    "taskscope.commands.recover",
)

OVERVIEW = """\
Every command reads a monitoring database (taskscope's or Parsl's) read-only, also while a
workflow writes it. DATABASE is a path or an sqlite:/// URL (default: ./monitoring.db, then
./runinfo/monitoring.db); RUN is a run id or any unique prefix of one (default: the latest
run). Exit codes: 0 done, 1 not found or unreadable, 2 bad arguments, 130 interrupted.
`taskscope COMMAND --help` shows each command's options and examples."""

EXAMPLES = (
    "taskscope runs",
    "taskscope tasks monitoring.db 85029df9 --state failed",
    "taskscope analyze monitoring.db --run 85029df9",
    "taskscope report monitoring.db -o report.html",
    "taskscope export monitoring.db --format chrome-trace -o trace.json",
    "taskscope top monitoring.db",
    "taskscope diff monitoring.db 85029df9 4be1",
    "taskscope recover monitoring.db",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="taskscope",
        description=OVERVIEW,
        epilog=example_epilog(*EXAMPLES),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"taskscope {taskscope_version()}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
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
