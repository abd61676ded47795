"""What every `taskscope` command shares: how it names a database and a run, how it fails,
and how it reports progress.

- Database: a path or an ``sqlite:///`` URL; omitted, ``./monitoring.db`` then
  ``./runinfo/monitoring.db`` (`taskscope.store.readonly.locate_database`).
- Run: omitted, the latest run (by start time); otherwise a run id or any unique prefix of
  one. An unknown or ambiguous run is a `CliError` whose message lists what matched.
- Exit codes: `EXIT_OK` 0, `EXIT_ERROR` 1 (the database, run or task asked for is not there
  or cannot be read; a failed write of the output), `EXIT_USAGE` 2 (bad arguments, as
  argparse exits), `EXIT_INTERRUPTED` 130 (Ctrl-C).
- Progress: `Progress` prints to stderr only once an operation has taken `PROGRESS_AFTER_S`
  seconds, so quick commands stay silent and pipelines keep a clean stdout.

A command handler raises `CliError` for anything the user can fix; `run_handler` turns it
(and database errors, Ctrl-C and a closed stdout pipe) into a message on stderr and an exit
code, so no traceback reaches the terminal.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sqlite3
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from taskscope.store.readonly import (
    DatabaseNotFound,
    LocatedDatabase,
    describe_database,
    locate_database,
    open_readonly,
    retry_busy,
)

if TYPE_CHECKING:  # typing.Self is Python 3.11+; annotations are not evaluated at run time
    from typing_extensions import Self

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

PROGRESS_AFTER_S = 2.0
PROGRESS_EVERY_S = 1.0
# How many matching run ids an "ambiguous prefix" message lists.
AMBIGUOUS_SHOWN = 5


class CliError(Exception):
    """An error the user can act on: printed as ``taskscope: MESSAGE``, exit `code`."""

    def __init__(self, message: str, code: int = EXIT_ERROR) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class SelectedRun:
    run_id: str
    how: str  # "latest run", "run id", "unique prefix": for messages


# ---- arguments ---------------------------------------------------------------------------


def add_database_argument(parser: argparse.ArgumentParser, required: bool = False) -> None:
    """The positional DATABASE argument every command takes."""
    parser.add_argument(
        "database",
        nargs=None if required else "?",
        metavar="DATABASE",
        help="monitoring database path or sqlite:/// URL (default: ./monitoring.db, then "
        "./runinfo/monitoring.db)",
    )


def add_run_option(parser: argparse.ArgumentParser) -> None:
    """``--run RUN``: a run id or a unique prefix of one; the latest run when omitted."""
    parser.add_argument(
        "--run",
        "-r",
        metavar="RUN",
        help="run id or unique prefix of one (default: the latest run)",
    )


def example_epilog(*lines: str) -> str:
    """An --help epilog listing examples (use with RawDescriptionHelpFormatter)."""
    return "examples:\n" + "\n".join(f"  {line}" for line in lines)


def command_parser(
    commands: argparse._SubParsersAction, name: str, help_text: str, *examples: str
) -> argparse.ArgumentParser:
    """A subcommand parser with the shared look: help, description and examples."""
    return commands.add_parser(
        name,
        help=help_text,
        description=help_text[0].upper() + help_text[1:] + ".",
        epilog=example_epilog(*examples) if examples else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


# ---- database and run --------------------------------------------------------------------


@contextmanager
def open_database(argument: str | None) -> Iterator[tuple[LocatedDatabase, sqlite3.Connection]]:
    """The located database and a read-only connection to it, closed at the end."""
    located = locate_database(argument, Path.cwd())
    conn = open_readonly(located.path)
    try:
        yield located, conn
    finally:
        conn.close()


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def select_run(
    conn: sqlite3.Connection, run: str | None, where: str = "the database"
) -> SelectedRun:
    """The run a command works on: `run` exactly, else the one run id starting with `run`,
    else (run None) the run that began last. Raises CliError when there is no such run or the
    prefix matches several."""
    info = describe_database(conn)
    if not info.has_runs:
        raise CliError(f"{where} has no workflow table: it holds no runs")
    if run is None:
        row = retry_busy(
            lambda: conn.execute(
                "SELECT run_id FROM workflow ORDER BY time_began DESC, run_id DESC LIMIT 1"
            ).fetchone()
        )
        if row is None:
            raise CliError(f"no runs in {where}")
        return SelectedRun(row[0], "latest run")
    run = run.strip()
    if not run:
        raise CliError("the run id is empty", EXIT_USAGE)
    exact = retry_busy(
        lambda: conn.execute("SELECT run_id FROM workflow WHERE run_id = ?", (run,)).fetchone()
    )
    if exact is not None:
        return SelectedRun(exact[0], "run id")
    matches = [
        r[0]
        for r in retry_busy(
            lambda: conn.execute(
                "SELECT run_id FROM workflow WHERE run_id LIKE ? ESCAPE '\\' "
                "ORDER BY time_began DESC, run_id LIMIT ?",
                (_escape_like(run) + "%", AMBIGUOUS_SHOWN + 1),
            ).fetchall()
        )
        # LIKE ignores ASCII case; a run id prefix is case-sensitive.
        if r[0].startswith(run)
    ]
    if len(matches) == 1:
        return SelectedRun(matches[0], "unique prefix")
    if not matches:
        raise CliError(f"no run {run!r} in {where} (see `taskscope runs`)")
    shown = ", ".join(matches[:AMBIGUOUS_SHOWN])
    more = " and more" if len(matches) > AMBIGUOUS_SHOWN else ""
    raise CliError(f"run prefix {run!r} is ambiguous in {where}: it matches {shown}{more}")


@contextmanager
def open_run(
    database: str | None, run: str | None
) -> Iterator[tuple[LocatedDatabase, sqlite3.Connection, SelectedRun]]:
    """`open_database` and `select_run` in one step, for commands about one run."""
    with open_database(database) as (located, conn):
        yield located, conn, select_run(conn, run, str(located.path))


# ---- progress ----------------------------------------------------------------------------


class Progress:
    """Progress of a long operation on stderr, silent for its first `PROGRESS_AFTER_S`.

    On a terminal one line is rewritten in place; otherwise (a log file, CI) a line is
    printed at most every `every_s` seconds. ``clock`` is injectable for tests."""

    def __init__(
        self,
        what: str,
        total: int | None = None,
        *,
        stream: TextIO | None = None,
        after_s: float = PROGRESS_AFTER_S,
        every_s: float = PROGRESS_EVERY_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.what = what
        self.total = total
        self.stream = stream if stream is not None else sys.stderr
        self.after_s = after_s
        self.every_s = every_s
        self.clock = clock
        self.started = clock()
        self.last_shown: float | None = None
        self.done = 0
        self.shown_any = False
        self.in_place = bool(getattr(self.stream, "isatty", lambda: False)())
        if not self.in_place:
            self.every_s = max(self.every_s, 5.0)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.finish()

    def advance(self, count: int = 1) -> None:
        self.update(self.done + count)

    def update(self, done: int, total: int | None = None) -> None:
        self.done = done
        if total is not None:
            self.total = total
        now = self.clock()
        if now - self.started < self.after_s:
            return
        if self.last_shown is not None and now - self.last_shown < self.every_s:
            return
        self.last_shown = now
        self._show(now)

    def _line(self, now: float) -> str:
        elapsed = now - self.started
        if self.total:
            share = min(100.0, 100.0 * self.done / self.total)
            return f"{self.what}: {self.done:,} of {self.total:,} ({share:.0f}%), {elapsed:.0f}s"
        return f"{self.what}: {self.done:,}, {elapsed:.0f}s"

    def _show(self, now: float) -> None:
        line = self._line(now)
        if self.in_place:
            self.stream.write("\r" + line + "\x1b[K")
        else:
            self.stream.write(line + "\n")
        self.stream.flush()
        self.shown_any = True

    def finish(self) -> None:
        """End the progress line (only if one was shown), with the final count."""
        if not self.shown_any:
            return
        line = self._line(self.clock()) + " done"
        self.stream.write(("\r" + line + "\x1b[K\n") if self.in_place else line + "\n")
        self.stream.flush()
        self.shown_any = False


# ---- running a handler -------------------------------------------------------------------


def error(message: str) -> None:
    print(f"taskscope: {message}", file=sys.stderr)


def run_handler(handler: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    """Call a command handler; errors the user can act on become a message and an exit code."""
    try:
        return handler(args)
    except CliError as exc:
        error(str(exc))
        return exc.code
    except DatabaseNotFound as exc:
        error(str(exc))
        return EXIT_ERROR
    except sqlite3.Error as exc:
        error(f"the database could not be read: {exc}")
        return EXIT_ERROR
    except KeyboardInterrupt:
        error("interrupted")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader of our stdout went away (`taskscope runs | head`): not an error. Point
        # stdout at devnull so the interpreter's final flush does not complain.
        import os

        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK


# ---- output files ------------------------------------------------------------------------


@contextmanager
def output_file(path: str | Path) -> Iterator[TextIO]:
    """Write `path` through a temporary file beside it, renamed into place on success, so a
    failed or interrupted export never leaves a half-written file under the final name.
    ``-`` writes to stdout. An unwritable location is a CliError."""
    if str(path) == "-":
        yield sys.stdout
        sys.stdout.flush()
        return
    target = Path(path)
    if target.is_dir():
        raise CliError(f"{target} is a directory; give a file name")
    partial = target.with_name(f".{target.name}.partial")
    try:
        stream: TextIO = open(partial, "w", encoding="utf-8")  # noqa: SIM115
    except OSError as exc:
        raise CliError(f"cannot write {target}: {exc.strerror or exc}") from exc
    try:
        with stream:
            yield stream
        partial.replace(target)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


def seconds_text(value: float | None) -> str:
    """A duration for a terminal table: ``12.34s``, or ``-`` when unknown."""
    return "-" if value is None else f"{value:.2f}s"


def _plain(value: object) -> object:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def print_json(document: object) -> None:
    """Print records (dataclasses, lists, dicts) as one JSON document on stdout."""
    json.dump(_plain(document), sys.stdout, indent=2)
    sys.stdout.write("\n")
