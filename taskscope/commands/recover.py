"""`taskscope recover DB`: write into DB the monitoring events its spool still holds.

A run whose workflow or writer process was killed leaves the events it had sent in
``DB.spool/`` (see ``taskscope/store/spool.py``); the next run on DB writes them too, and this
command does it now. Segments a running writer still owns are left to it. A database that
was deleted during a run is created again from what its spool holds.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from taskscope.commands.support import EXIT_OK, CliError, Progress, command_parser
from taskscope.store.errors import StoreError
from taskscope.store.readonly import path_from_argument
from taskscope.store.replay import recover
from taskscope.store.spool import list_segments, spool_dir


def cmd_recover(args: argparse.Namespace) -> int:
    path = path_from_argument(args.database, Path.cwd())
    spool = spool_dir(path)
    if not list_segments(spool):
        if not path.is_file():
            raise CliError(f"no monitoring database at {path}, and no spool beside it")
        print(f"nothing to recover: {path} has no unwritten events")
        return EXIT_OK
    progress = Progress(f"recovering into {path}")

    def on_busy(reason: str) -> None:
        print(f"taskscope: waiting: {reason}", file=sys.stderr)

    try:
        result = recover(
            path, progress=lambda done, left: progress.update(done, done + left), on_busy=on_busy
        )
    except StoreError as exc:
        raise CliError(str(exc)) from exc
    finally:
        progress.finish()
    print(
        f"recovered {result.messages:,} events from {result.segments} spool segment(s) into {path}"
    )
    if result.live:
        print(
            f"{result.live} segment(s) belong to a writer that is still running; "
            "it writes them itself"
        )
    return EXIT_OK


def register(commands: argparse._SubParsersAction) -> None:
    parser = command_parser(
        commands,
        "recover",
        "write the events a killed run left in the database's spool",
        "taskscope recover runinfo/monitoring.db",
    )
    parser.add_argument(
        "database", metavar="DATABASE", help="monitoring database path or sqlite:/// URL"
    )
    parser.set_defaults(handler=cmd_recover)
