"""Efficiency and advice, the live forecast and its stored checks, and the run diff."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from taskscope.store.analysis.context import run_context
from taskscope.store.analysis.diff import run_diff
from taskscope.store.analysis.efficiency import app_efficiency
from taskscope.store.analysis.failures import failure_groups
from taskscope.store.analysis.forecast import forecast
from taskscope.store.analysis.report import analyze, as_json, keep_forecast
from taskscope.store.readonly import open_readonly
from taskscope.store.synthetic import SyntheticRun, create_database

pytestmark = pytest.mark.timeout(600)
LIVE_WORKFLOW = Path(__file__).with_name("live_workflow.py")


def _efficiency(path, run_id, wait_share=None):
    conn = open_readonly(path)
    try:
        ctx = run_context(conn, run_id)
        return app_efficiency(ctx, failure_groups(ctx, with_history=False), wait_share)
    finally:
        conn.close()


def test_planted_walltime_failures_give_walltime_advice(planted):
    result = _efficiency(planted.path, planted.first_run)
    advice = [a for a in result.advice if a.app == "slow_io"]
    assert [(a.setting, a.current) for a in advice] == [("walltime", "0.5 s")]
    # No successful try says how long it needs: the advice says so instead of a number.
    assert "none succeeded" in advice[0].evidence
    apps = {a.app: a for a in result.apps}
    assert apps["steady"].tries == 14 and apps["steady"].failed_tries == 0
    assert apps["steady"].run_s_median == pytest.approx(0.1, abs=0.05)
    assert apps["stage"].cpu_efficiency is not None and apps["stage"].cpu_efficiency < 0.2
    assert apps["steady"].memory_per_worker > apps["steady"].peak_rss_max > 0


def _resized(tmp_path, name, cpu_factor=1.0, rss=None, cpu_app="transform"):
    db = create_database(
        tmp_path / f"{name}.db",
        [SyntheticRun(name, tasks=400, workers=4, fail_fraction=0.0, retry_fraction=0.0, seed=5)],
    )
    conn = sqlite3.connect(db)
    conn.execute(
        "UPDATE resource SET psutil_process_time_user = psutil_process_time_user * ?, "
        "psutil_process_time_system = psutil_process_time_system * ? WHERE task_id IN "
        "(SELECT task_id FROM task WHERE task_func_name = ? OR ? IS NULL)",
        (cpu_factor, cpu_factor, cpu_app, cpu_app),
    )
    if rss is not None:
        conn.execute(
            "UPDATE resource SET psutil_process_memory_resident = ? WHERE task_id IN "
            "(SELECT task_id FROM task WHERE task_func_name = 'combine')",
            (rss,),
        )
    conn.commit()
    conn.close()
    return db


def test_cpu_hungry_and_memory_hungry_apps_get_advice(tmp_path):
    # Each worker has 16 GiB / 4 workers = 4 GiB and 1 core (the synthetic node: 4 CPUs).
    db = _resized(tmp_path, "hungry", cpu_factor=3.0, rss=5 * 2**30)  # 0.9 x 3 = 2.7 cores
    result = _efficiency(db, "hungry")
    by = {(a.app, a.setting): a for a in result.advice}
    assert set(by) == {("transform", "cores_per_worker"), ("combine", "mem_per_worker")}
    assert by[("transform", "cores_per_worker")].suggested == "3"
    assert by[("combine", "mem_per_worker")].suggested == "6.0 GiB"  # 5 GiB p99 + 20%


def test_idle_workers_on_a_worker_bound_run_get_more_workers(tmp_path):
    db = _resized(tmp_path, "idle", cpu_factor=0.2, cpu_app=None)  # 0.9 x 0.2: 18% CPU-busy
    without_waiting = _efficiency(db, "idle", wait_share=0.0)
    assert not [a for a in without_waiting.advice if a.setting == "max_workers_per_node"]
    result = _efficiency(db, "idle", wait_share=0.4)
    advice = [a for a in result.advice if a.setting == "max_workers_per_node"]
    assert [(a.current, a.suggested) for a in advice] == [("4", "8")]


def test_regression_is_flagged_on_the_app_that_regressed(tmp_path):
    db = create_database(
        tmp_path / "diff.db",
        [
            SyntheticRun(
                "before",
                tasks=600,
                fail_fraction=0.0,
                retry_fraction=0.0,
                seed=1,
                workflow_name="wf",
            ),
            SyntheticRun(
                "after",
                tasks=600,
                fail_fraction=0.0,
                retry_fraction=0.0,
                seed=2,
                workflow_name="wf",
            ),
        ],
    )
    conn = sqlite3.connect(db)
    conn.execute(
        "UPDATE try SET task_try_time_returned = strftime('%Y-%m-%d %H:%M:%f', "
        "julianday(task_try_time_running) + 2 * (julianday(task_try_time_returned) - "
        "julianday(task_try_time_running))) WHERE run_id = 'after' AND task_id IN "
        "(SELECT task_id FROM task WHERE run_id = 'after' AND task_func_name = 'transform')"
    )
    conn.commit()
    conn.close()
    reader = open_readonly(db)
    try:
        diff = run_diff(reader, "before", "after")
    finally:
        reader.close()
    flagged = {(app.app, c.metric) for app in diff.apps for c in app.regressions}
    assert flagged == {("transform", "run_s")}
    transform = next(a for a in diff.apps if a.app == "transform")
    change = next(c for c in transform.changes if c.metric == "run_s")
    assert change.b == pytest.approx(2 * change.a, rel=0.15) and change.p_value < 1e-6


def test_diff_of_the_two_planted_runs(planted):
    reader = open_readonly(planted.path)
    try:
        diff = run_diff(reader, planted.first_run, planted.second_run)
    finally:
        reader.close()
    apps = {a.app: a for a in diff.apps}
    assert (apps["compress"].tasks_a, apps["compress"].tasks_b) == (1, 0)
    assert (apps["divide"].tasks_a, apps["divide"].tasks_b) == (0, 2)
    rates = {c.metric: (c.a, c.b) for c in apps["lookup"].changes}
    assert rates["failure_rate"] == (1.0, 1.0)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "taskscope.cli",
            "diff",
            str(planted.path),
            planted.first_run[:8],
            planted.second_run[:8],
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["run_b"] == planted.second_run


def _finished_tries(db: Path) -> int:
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1)
        try:
            return conn.execute(
                "SELECT COUNT(*) FROM try WHERE task_try_time_returned IS NOT NULL"
            ).fetchone()[0]
        finally:
            conn.close()
    except sqlite3.Error:
        return 0


def test_forecast_of_a_live_run_is_stored_and_checked_when_it_ends(tmp_path):
    db = tmp_path / "monitoring.db"
    process = subprocess.Popen(
        [sys.executable, str(LIVE_WORKFLOW), str(db), str(tmp_path / "runinfo")],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while _finished_tries(db) < 6 and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        conn = open_readonly(db)
        try:
            run_id = conn.execute("SELECT run_id FROM workflow").fetchone()[0]
            live = analyze(conn, run_id)
        finally:
            conn.close()
    finally:
        _, stderr = process.communicate(timeout=180)
    assert process.returncode == 0, stderr[-2000:]
    f = live.forecast
    assert f.live and f.method == "simulation" and f.workers == 2
    assert f.tasks_left > 0 and f.tasks_done + f.tasks_left == 30
    assert 0 < f.p50_s <= f.p90_s
    assert keep_forecast(db, live) is True
    assert keep_forecast(db, live) is False  # one stored forecast per run every 30 s
    conn = open_readonly(db)
    try:
        ended = analyze(conn, run_id)
        actual = conn.execute("SELECT time_completed FROM workflow").fetchone()[0]
    finally:
        conn.close()
    assert not ended.forecast.live
    [check] = ended.forecast.checks
    assert check.p50_finish == f.p50_finish and check.actual_end[:19] == actual[:19]
    from taskscope.store.timestamps import parse_timestamp

    expected = (parse_timestamp(actual) - parse_timestamp(f.p50_finish)).total_seconds()
    assert check.error_s == pytest.approx(expected, abs=1e-3)
    assert check.within_p90 == (parse_timestamp(actual) <= parse_timestamp(f.p90_finish))
    document = as_json(ended)
    assert set(document) >= {"failures", "critical_path", "stragglers", "hosts", "apps", "forecast"}
    json.dumps(document)


def test_forecast_is_not_kept_for_parsl_databases(tmp_path):
    import shutil

    from fixture_paths import PARSL_FIXTURE_DB, PARSL_RUN

    copy = tmp_path / "parsl.db"
    shutil.copy(PARSL_FIXTURE_DB, copy)
    conn = open_readonly(copy)
    try:
        result = analyze(conn, PARSL_RUN)
        assert not result.forecast.live and result.forecast.checks == []
        assert forecast(run_context(conn, PARSL_RUN)).live is False
    finally:
        conn.close()
    assert keep_forecast(copy, result) is False
    assert copy.read_bytes() == PARSL_FIXTURE_DB.read_bytes()
