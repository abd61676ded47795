"""The `taskscope` terminal commands on Parsl's fixture database."""

from __future__ import annotations

from pathlib import Path

from fixture_paths import PARSL_FIXTURE_DB

from taskscope.cli import main

FIXTURE = PARSL_FIXTURE_DB
RUN = "85029df9-5f8e-4ab7-810a-f8db9f552f59"


def test_version(capsys):
    try:
        main(["--version"])
    except SystemExit as exc:
        assert exc.code == 0
    assert capsys.readouterr().out.startswith("taskscope ")


def test_runs_lists_the_run(capsys):
    assert main(["runs", str(FIXTURE)]) == 0
    out = capsys.readouterr().out
    assert RUN in out and "diamond-sample" in out and "failed" in out and "275" in out


def test_tasks_filtered_by_state(capsys):
    assert main(["tasks", f"sqlite:///{FIXTURE}", RUN, "--state", "failed"]) == 0
    out = capsys.readouterr().out
    assert out.count("always_fail") == 4 and "4 of 4 tasks" in out


def test_missing_database_and_run_are_clear_errors(tmp_path: Path, capsys):
    assert main(["runs", str(tmp_path / "nope.db")]) == 1
    assert "no monitoring database" in capsys.readouterr().err
    assert not (tmp_path / "nope.db").exists()
    assert main(["tasks", str(FIXTURE), "no-such-run"]) == 1
    assert "no run" in capsys.readouterr().err


def test_tasks_takes_a_unique_run_id_prefix(capsys):
    assert main(["tasks", str(FIXTURE), RUN[:8], "--state", "failed"]) == 0
    assert "4 of 4 tasks" in capsys.readouterr().out


def test_tasks_refuses_an_unknown_state(capsys):
    assert main(["tasks", str(FIXTURE), RUN, "--state", "finished"]) == 2
    err = capsys.readouterr().err
    assert "unknown state 'finished'" in err and "exec_done" in err


def test_runs_and_tasks_as_json(capsys):
    import json

    assert main(["runs", str(FIXTURE), "--json"]) == 0
    runs = json.loads(capsys.readouterr().out)
    assert runs["total"] == 1 and runs["runs"][0]["run_id"] == RUN
    assert main(["tasks", str(FIXTURE), "--run", RUN[:8], "--state", "failed", "--json"]) == 0
    tasks = json.loads(capsys.readouterr().out)
    assert tasks["total"] == 4 and {t["app"] for t in tasks["tasks"]} == {"always_fail"}
