"""`taskscope top`: a live terminal view of a run, for login nodes where no browser reaches.

rich draws it (an optional extra, ``pip install 'taskscope[top]'``: the workers and the
dashboard do not need it, and httpx's CLI makes the same choice). The counts are read every
`--interval` seconds; the analyses that read the whole run (failure groups, stragglers, the
forecast) every `SLOW_EVERY_S`.
"""

from __future__ import annotations

import argparse
import sqlite3
import threading
import time
from pathlib import Path

from taskscope.commands.support import (
    EXIT_OK,
    CliError,
    add_database_argument,
    add_run_option,
    command_parser,
    open_run,
)
from taskscope.store.readonly import open_readonly

SLOW_EVERY_S = 10.0


def register(commands: argparse._SubParsersAction) -> None:
    parser = command_parser(
        commands,
        "top",
        "watch a run in the terminal: tasks by state, rate, forecast, "
        "failure groups, busiest apps, stragglers",
        "taskscope top runinfo/monitoring.db",
        "taskscope top monitoring.db --run 85029df9 --once   # one frame, for scripts",
    )
    add_database_argument(parser)
    add_run_option(parser)
    parser.add_argument("--once", action="store_true", help="print one frame and exit")
    parser.add_argument(
        "--interval",
        type=float,
        default=2.0,
        metavar="SECONDS",
        help="seconds between refreshes (default 2)",
    )
    parser.set_defaults(handler=cmd_top)


def _rich():
    try:
        from rich.console import Console
        from rich.live import Live
    except ImportError as exc:
        raise CliError("taskscope top needs rich: pip install 'taskscope[top]'") from exc
    return Console, Live


class SlowReader:
    """Reads the whole-run analyses on a thread of its own (with its own connection), every
    `SLOW_EVERY_S`, so the counts keep refreshing while a large run's analysis is read."""

    def __init__(self, path: Path, run_id: str) -> None:
        from taskscope.commands.top_frame import SlowParts

        self.path = path
        self.run_id = run_id
        self.latest = SlowParts(ready=False)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="taskscope-top", daemon=True)

    def _loop(self) -> None:
        from taskscope.commands.top_frame import read_slow_parts

        conn = open_readonly(self.path)
        try:
            while not self.stop.is_set():
                try:
                    self.latest = read_slow_parts(conn, self.run_id)
                except (sqlite3.Error, LookupError):
                    pass  # a writer's lock, or the run went away: the next round tries again
                self.stop.wait(SLOW_EVERY_S)
        finally:
            conn.close()


def cmd_top(args: argparse.Namespace) -> int:
    from taskscope.commands.top_frame import collect, read_slow_parts, render

    console_type, live_type = _rich()
    if args.interval <= 0:
        raise CliError("--interval must be more than 0 seconds", 2)
    console = console_type()
    with open_run(args.database, args.run) as (located, conn, selected):
        run_id = selected.run_id
        if args.once:
            frame = collect(conn, run_id, read_slow_parts(conn, run_id))
            if frame is None:
                raise CliError(f"run {run_id!r} is no longer in the database")
            console.print(render(frame))
            return EXIT_OK
        reader = SlowReader(located.path, run_id)
        reader.thread.start()
        try:
            frame = collect(conn, run_id, reader.latest)
            if frame is None:
                raise CliError(f"run {run_id!r} is no longer in the database")
            with live_type(
                render(frame), console=console, screen=False, auto_refresh=False, transient=False
            ) as live:
                while True:
                    time.sleep(args.interval)
                    frame = collect(conn, run_id, reader.latest)
                    if frame is None:
                        raise CliError(f"run {run_id!r} is no longer in the database")
                    live.update(render(frame), refresh=True)
        except KeyboardInterrupt:
            return EXIT_OK  # Ctrl-C is how one leaves top
        finally:
            reader.stop.set()
