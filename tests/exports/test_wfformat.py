"""`taskscope export --format wfformat`: valid against WfFormat's published schema (vendored
in tests/fixtures/wfformat, see SOURCE.md there), with the run's tasks, edges and runtimes."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from fixture_paths import FIXTURES, PARSL_FIXTURE_DB, PARSL_RUN

from taskscope.cli import main
from taskscope.store.synthetic import SyntheticRun, create_database

jsonschema = pytest.importorskip("jsonschema")
SCHEMA = json.loads((FIXTURES / "wfformat" / "wfcommons-schema.json").read_text())
# The schema names no draft ("http://json-schema.org/schema#"); its keywords are draft 7's.
VALIDATOR = jsonschema.Draft7Validator(SCHEMA, format_checker=jsonschema.FormatChecker())


def export(tmp_path: Path, db: Path, run: str) -> dict:
    out = tmp_path / "wf.json"
    assert main(["export", str(db), "--run", run, "--format", "wfformat", "-o", str(out)]) == 0
    instance = json.loads(out.read_text())
    VALIDATOR.validate(instance)
    return instance


@pytest.mark.parametrize(
    "db_name,run", [("parsl", PARSL_RUN), ("taskscope", "run-failed"), ("taskscope", "run-live")]
)
def test_instance_is_valid_and_true(tmp_path: Path, taskscope_db: Path, db_name, run):
    db = PARSL_FIXTURE_DB if db_name == "parsl" else taskscope_db
    instance = export(tmp_path, db, run)
    spec = {t["id"]: t for t in instance["workflow"]["specification"]["tasks"]}
    execution = {t["id"]: t for t in instance["workflow"]["execution"]["tasks"]}
    conn = sqlite3.connect(db)
    tasks = dict(conn.execute("SELECT task_id, task_func_name FROM task WHERE run_id = ?", (run,)))
    edges = {
        (int(d), t)
        for t, deps in conn.execute(
            "SELECT task_id, task_depends FROM task WHERE run_id = ?", (run,)
        )
        for d in (deps or "").split(",")
        if d.strip()
    }
    edges |= {
        (int(j), t)
        for t, joins in conn.execute("SELECT task_id, task_joins FROM try WHERE run_id = ?", (run,))
        for j in (joins or "").split(",")
        if j.strip()
    }
    run_time = dict(
        conn.execute(
            "SELECT task_id, SUM((julianday(task_try_time_returned) - "
            "julianday(task_try_time_running))"
            " * 86400) FROM try WHERE run_id = ? GROUP BY 1",
            (run,),
        )
    )
    hosts = {
        h for (h,) in conn.execute("SELECT DISTINCT hostname FROM node WHERE run_id = ?", (run,))
    }
    conn.close()
    assert {int(i): t["name"] for i, t in spec.items()} == tasks
    assert {(int(p), int(i)) for i, t in spec.items() for p in t["parents"]} == edges
    assert {(int(i), int(c)) for i, t in spec.items() for c in t["children"]} == edges
    assert set(execution) == set(spec)
    for task_id, seconds in run_time.items():
        assert execution[str(task_id)]["runtimeInSeconds"] == pytest.approx(seconds or 0, abs=1e-4)
    assert {m["nodeName"] for m in instance["workflow"]["execution"]["machines"]} == hosts
    assert instance["runtimeSystem"]["name"] == ("parsl" if db_name == "parsl" else "taskscope")


def test_run_without_tasks_is_a_clear_error(tmp_path: Path, capsys):
    db = create_database(tmp_path / "m.db", [SyntheticRun("empty-run", tasks=0)])
    assert main(["export", str(db), "--format", "wfformat", "-o", str(tmp_path / "x.json")]) == 1
    assert "has no tasks" in capsys.readouterr().err
    assert not (tmp_path / "x.json").exists()
