"""`taskscope export`: a run as a Chrome/Perfetto trace, CSV or Parquet tables, or WfFormat."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

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
from taskscope.store.readonly import describe_database, run_convention

FORMATS = ("chrome-trace", "csv", "parquet", "wfformat")
DEFAULT_OUTPUT = {
    "chrome-trace": "trace.json",
    "csv": "tables-csv",
    "parquet": "tables-parquet",
    "wfformat": "wfformat.json",
}


def register(commands: argparse._SubParsersAction) -> None:
    parser = command_parser(
        commands,
        "export",
        "export a run as a Chrome/Perfetto trace, CSV or Parquet tables, "
        "or a WfCommons WfFormat instance",
        "taskscope export monitoring.db --format chrome-trace -o trace.json  "
        "# open in ui.perfetto.dev",
        "taskscope export monitoring.db --run 85029df9 --format parquet -o tables/",
        "taskscope export monitoring.db --format csv --all-runs -o csv/",
        "taskscope export monitoring.db --format wfformat -o workflow.json",
    )
    add_database_argument(parser)
    add_run_option(parser)
    parser.add_argument(
        "--format",
        "-f",
        required=True,
        choices=FORMATS,
        help="chrome-trace: one JSON file of trace events; csv, parquet: a "
        "directory with one file per table; wfformat: one JSON file",
    )
    parser.add_argument(
        "-o",
        "--output",
        metavar="PATH",
        help="file (chrome-trace, wfformat; - for stdout) or directory (csv, "
        "parquet); default: " + ", ".join(f"{v} for {k}" for k, v in DEFAULT_OUTPUT.items()),
    )
    parser.add_argument(
        "--all-runs",
        action="store_true",
        help="csv and parquet: every run's rows, not only the selected run's",
    )
    parser.set_defaults(handler=cmd_export)


def cmd_export(args: argparse.Namespace) -> int:
    output = args.output or DEFAULT_OUTPUT[args.format]
    if output == "-" and args.format in ("csv", "parquet"):
        raise CliError(f"--format {args.format} writes a directory of files; give -o DIRECTORY", 2)
    if args.all_runs and args.format not in ("csv", "parquet"):
        raise CliError("--all-runs is for --format csv and parquet", 2)
    with open_run(args.database, args.run) as (_located, conn, selected):
        run_id = selected.run_id
        if args.format == "chrome-trace":
            from taskscope.exports.chrome_trace import try_count, write_chrome_trace

            with (
                Progress("tries written", try_count(conn, run_id)) as progress,
                output_file(output) as out,
            ):
                counts = write_chrome_trace(conn, run_id, out, progress.update)
            summary = (
                f"{counts['X']:,} tries, {counts['flow'] // 2:,} dependency flows, "
                f"{counts['C']:,} counter samples"
            )
        elif args.format == "wfformat":
            from taskscope.exports.wfformat import EmptyRun, write_wfformat

            total = conn.execute(
                "SELECT COUNT(*) FROM task WHERE run_id = ?", (run_id,)
            ).fetchone()[0]
            try:
                with Progress("tasks written", total) as progress, output_file(output) as out:
                    tasks = write_wfformat(conn, run_id, out, progress.update)
            except EmptyRun as exc:
                raise CliError(str(exc)) from exc
            summary = f"{tasks:,} tasks"
        else:
            from taskscope.exports import tables

            only = None if args.all_runs else run_id
            total = sum(
                tables.row_count(conn, name, columns, only)
                for name, columns in tables.tables_of(conn)
            )
            try:
                with Progress("rows written", total) as progress:
                    if args.format == "csv":
                        written = tables.export_csv(conn, Path(output), only, progress.update)
                    else:
                        convention = run_convention(conn, describe_database(conn), run_id)
                        written = tables.export_parquet(
                            conn, Path(output), only, convention, progress.update
                        )
            except tables.ExportError as exc:
                raise CliError(str(exc)) from exc
            summary = f"{len(written)} tables, {sum(t.rows for t in written):,} rows"
    if output != "-":
        scope = "every run" if args.all_runs else f"run {run_id}"
        print(f"wrote {output} ({scope}: {summary})", file=sys.stderr)
    return EXIT_OK
