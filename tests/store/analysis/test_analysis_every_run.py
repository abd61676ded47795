"""Every analysis runs on every shape of run the dashboard knows (completed, failed, lost,
live, without resource samples, Parsl's) and on a database without the state table, and the
commands fail cleanly on bad input."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from fixture_paths import PARSL_FIXTURE_DB, PARSL_RUN

from taskscope.store.analysis.diff import run_diff
from taskscope.store.analysis.report import analyze, as_json
from taskscope.store.readonly import open_readonly
from taskscope.store.synthetic import create_database, standard_runs

RUNS = ["run-completed", "run-failed", "run-lost", "run-live", "run-noresources"]


@pytest.fixture(scope="module", params=[True, False], ids=["state-table", "status-history"])
def standard_db(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp("standard")
    return create_database(folder / "monitoring.db", standard_runs(), task_state=request.param)


@pytest.mark.parametrize("run_id", RUNS)
def test_every_run_shape_analyses(standard_db, run_id):
    conn = open_readonly(standard_db)
    try:
        result = analyze(conn, run_id)
    finally:
        conn.close()
    document = as_json(result)
    json.dumps(document)
    assert result.forecast.live == (run_id == "run-live")
    if run_id == "run-live":
        assert result.forecast.p50_s is not None and result.forecast.tasks_left > 0
    if run_id == "run-failed":
        assert {g.cause for g in result.failures} >= {"exception", "dependency"}
    path = result.critical_path
    if path.tasks:
        assert sum(s.total_s for s in path.tasks) == pytest.approx(path.makespan_s, abs=1e-3)


def test_diff_of_a_run_with_itself_has_no_regression(standard_db):
    conn = open_readonly(standard_db)
    try:
        same = run_diff(conn, "run-failed", "run-failed")
        other = run_diff(conn, "run-completed", "run-noresources")
    finally:
        conn.close()
    assert same.regressions == 0
    assert other.note and "different workflows" in other.note


def test_parsl_run_analyses_to_json():
    conn = open_readonly(PARSL_FIXTURE_DB)
    try:
        json.dumps(as_json(analyze(conn, PARSL_RUN)))
    finally:
        conn.close()


def _cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "taskscope.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_commands_fail_cleanly_on_bad_input(standard_db, tmp_path):
    unknown = _cli("diff", str(standard_db), "run-failed", "nope")
    assert unknown.returncode == 1 and "no run 'nope'" in unknown.stderr
    ambiguous = _cli("analyze", str(standard_db), "--run", "run-")
    assert ambiguous.returncode == 1 and "ambiguous" in ambiguous.stderr
    missing = _cli("analyze", str(tmp_path / "absent.db"))
    assert missing.returncode == 1 and "no monitoring database" in missing.stderr
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not a database at all" * 100)
    broken = _cli("analyze", str(junk))
    assert broken.returncode == 1 and "Traceback" not in broken.stderr
    usage = _cli("diff", str(standard_db))
    assert usage.returncode == 2
    for result in (unknown, ambiguous, missing, broken):
        assert "Traceback" not in result.stderr
