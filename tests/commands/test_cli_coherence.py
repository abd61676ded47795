"""One CLI: every command has examples in its --help, takes a run the same way, and fails
the same way (a message on stderr and an exit code, never a traceback)."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from taskscope.cli import build_parser, main


def subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def takes_run_option(parser: argparse.ArgumentParser) -> bool:
    return any("--run" in action.option_strings for action in parser._actions)


def test_the_documented_commands_are_there():
    assert {"runs", "tasks", "analyze", "report", "export", "top", "diff"} <= set(subcommands())


@pytest.mark.parametrize("name", sorted(subcommands()))
def test_help_has_an_example(name: str, capsys):
    with pytest.raises(SystemExit) as raised:
        main([name, "--help"])
    assert raised.value.code == 0
    out = capsys.readouterr().out
    assert "examples:" in out and f"taskscope {name}" in out.split("examples:")[1]


RUN_COMMANDS = sorted(name for name, p in subcommands().items() if takes_run_option(p))
EXTRA = {
    "export": ["--format", "csv", "-o", "{tmp}/out"],
    "report": ["-o", "{tmp}/r.html"],
    "top": ["--once"],
}


def command_line(name: str, db: Path, tmp: Path, *run: str) -> list[str]:
    extra = [part.replace("{tmp}", str(tmp)) for part in EXTRA.get(name, [])]
    return [name, str(db), *run, *extra]


@pytest.mark.parametrize("name", RUN_COMMANDS)
def test_every_run_command_takes_a_unique_prefix(
    name: str, taskscope_db: Path, tmp_path: Path, capsys
):
    assert main(command_line(name, taskscope_db, tmp_path, "--run", "run-fai")) == 0
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err


@pytest.mark.parametrize("name", RUN_COMMANDS)
def test_every_run_command_refuses_unknown_and_ambiguous_runs(
    name: str, taskscope_db: Path, tmp_path: Path, capsys
):
    assert main(command_line(name, taskscope_db, tmp_path, "--run", "run-")) == 1
    err = capsys.readouterr().err
    assert err.startswith("taskscope: ") and "ambiguous" in err and "run-failed" in err
    assert main(command_line(name, taskscope_db, tmp_path, "--run", "nope")) == 1
    assert "no run 'nope'" in capsys.readouterr().err


@pytest.mark.parametrize("name", sorted(subcommands()))
def test_a_missing_database_is_exit_1_with_a_message(name: str, tmp_path: Path, capsys):
    missing = tmp_path / "missing.db"
    args = [name, str(missing)]
    if name == "diff":
        args += ["a", "b"]
    args += [part.replace("{tmp}", str(tmp_path)) for part in EXTRA.get(name, [])]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert err.startswith("taskscope: ") and str(missing) in err and "Traceback" not in err
    assert not missing.exists()


def test_the_latest_run_is_the_default(taskscope_db: Path, capsys):
    import sqlite3

    conn = sqlite3.connect(taskscope_db)
    latest = conn.execute(
        "SELECT run_id FROM workflow ORDER BY time_began DESC LIMIT 1"
    ).fetchone()[0]
    conn.close()
    assert main(["tasks", str(taskscope_db), "--limit", "1"]) == 0
    assert main(["top", str(taskscope_db), "--once"]) == 0
    out = capsys.readouterr().out
    assert f"run {latest}" in out
