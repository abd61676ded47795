"""Run selection, exit codes, progress and output files shared by the `taskscope` commands."""

from __future__ import annotations

import io
import sqlite3
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from taskscope.commands.support import (
    EXIT_ERROR,
    EXIT_OK,
    CliError,
    Progress,
    open_run,
    output_file,
    run_handler,
    select_run,
)
from taskscope.store.readonly import open_readonly
from taskscope.store.synthetic import SyntheticRun, create_database

BASE = datetime(2026, 1, 1, 12, 0, 0)


@pytest.fixture(scope="module")
def runs_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    runs = [
        SyntheticRun("abc-111", tasks=5, began=BASE),
        SyntheticRun("abc-222", tasks=5, began=BASE + timedelta(hours=1)),
        SyntheticRun("abd-333", tasks=5, began=BASE + timedelta(hours=3)),
        SyntheticRun("a_c-444", tasks=5, began=BASE - timedelta(hours=1)),
    ]
    return create_database(tmp_path_factory.mktemp("runs") / "monitoring.db", runs)


@pytest.fixture
def conn(runs_db: Path):
    connection = open_readonly(runs_db)
    yield connection
    connection.close()


def test_latest_run_by_default(conn: sqlite3.Connection):
    assert select_run(conn, None).run_id == "abd-333"


def test_exact_id_and_unique_prefix(conn: sqlite3.Connection):
    assert select_run(conn, "abc-111").run_id == "abc-111"
    assert select_run(conn, "abc-2").run_id == "abc-222"
    assert select_run(conn, "abd").how == "unique prefix"


def test_ambiguous_prefix_names_the_matches(conn: sqlite3.Connection):
    with pytest.raises(CliError) as raised:
        select_run(conn, "abc")
    message = str(raised.value)
    assert "ambiguous" in message and "abc-111" in message and "abc-222" in message


def test_like_wildcards_and_case_are_literal(conn: sqlite3.Connection):
    # "_" would match any character in LIKE, and LIKE ignores case: neither may select a run.
    assert select_run(conn, "a_c").run_id == "a_c-444"
    with pytest.raises(CliError, match="no run 'ABD'"):
        select_run(conn, "ABD")
    with pytest.raises(CliError, match="no run '%'"):
        select_run(conn, "%")


def test_database_without_runs(tmp_path: Path):
    empty = create_database(tmp_path / "empty.db", [])
    with pytest.raises(CliError, match="no runs"), open_run(str(empty), None):
        pass


def test_run_handler_turns_errors_into_exit_codes(tmp_path: Path, capsys):
    def missing_run(args) -> int:
        raise CliError("no run 'x'")

    assert run_handler(missing_run, None) == EXIT_ERROR
    assert capsys.readouterr().err == "taskscope: no run 'x'\n"

    def bad_database(args) -> int:
        with open_run(str(tmp_path / "nope.db"), None):
            return EXIT_OK

    assert run_handler(bad_database, None) == EXIT_ERROR
    assert "no monitoring database" in capsys.readouterr().err
    assert not (tmp_path / "nope.db").exists()


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_progress_is_silent_for_quick_work():
    clock, stream = FakeClock(), io.StringIO()
    with Progress("exporting", 10, stream=stream, clock=clock) as progress:
        for _ in range(10):
            clock.now += 0.1
            progress.advance()
    assert stream.getvalue() == ""


def test_progress_shows_after_two_seconds():
    clock, stream = FakeClock(), io.StringIO()
    with Progress("exporting", 100, stream=stream, clock=clock) as progress:
        for _ in range(100):
            clock.now += 0.5
            progress.advance()
    lines = stream.getvalue().splitlines()
    assert lines[0].startswith("exporting: 4 of 100 (4%)")  # first shown at 2.0 s
    assert lines[-1] == "exporting: 100 of 100 (100%), 50s done"
    # not a terminal: at most one line every five seconds, plus the final one
    assert len(lines) <= 50 / 5 + 2


def test_output_file_is_renamed_into_place_only_on_success(tmp_path: Path):
    target = tmp_path / "out.json"
    with pytest.raises(RuntimeError), output_file(target) as stream:
        stream.write("half")
        raise RuntimeError("interrupted")
    assert not target.exists() and list(tmp_path.iterdir()) == []
    with output_file(target) as stream:
        stream.write("whole")
    assert target.read_text() == "whole"
    with pytest.raises(CliError, match="cannot write"), output_file(tmp_path / "no" / "x.json"):
        pass
