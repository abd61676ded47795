"""`taskscope report`: write a run's offline HTML report."""

from __future__ import annotations

import argparse
import sys

from taskscope.commands.support import (
    EXIT_OK,
    CliError,
    Progress,
    add_database_argument,
    add_run_option,
    command_parser,
    open_run,
    output_file,
)


def register(commands: argparse._SubParsersAction) -> None:
    parser = command_parser(
        commands,
        "report",
        "write a self-contained HTML report of a run (opens offline)",
        "taskscope report runinfo/monitoring.db -o report.html",
        "taskscope report monitoring.db --run 85029df9 -o failed-run.html",
    )
    add_database_argument(parser)
    add_run_option(parser)
    parser.add_argument(
        "-o",
        "--output",
        default="report.html",
        metavar="FILE",
        help="where to write the report (default: report.html; - for stdout)",
    )
    parser.add_argument(
        "--uncompressed",
        action="store_true",
        help="embed the plotting library as plain JavaScript (4.8 MB instead of "
        "2 MB) for browsers without DecompressionStream",
    )
    parser.set_defaults(handler=cmd_report)


def cmd_report(args: argparse.Namespace) -> int:
    from taskscope.exports.report import REPORT_PARTS, collect, write_report

    with open_run(args.database, args.run) as (located, conn, selected):
        with Progress(f"report of {selected.run_id}: parts read", len(REPORT_PARTS)) as progress:
            data = collect(
                conn, selected.run_id, str(located.path), step=lambda name: progress.advance()
            )
        if data is None:
            raise CliError(f"run {selected.run_id!r} disappeared from {located.path}")
    with output_file(args.output) as out:
        write_report(data, out, compress=not args.uncompressed)
    if args.output != "-":
        print(
            f"wrote {args.output} (run {selected.run_id}, {data.summary.run.task_count:,} tasks)",
            file=sys.stderr,
        )
    return EXIT_OK
