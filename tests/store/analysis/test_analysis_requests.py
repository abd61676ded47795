"""What each app asked for against what it used: the stored request of every task, and the
figures and advice the analysis derives, checked against the tries' own stored figures and
against what the planted apps are known to do (tests/store/analysis/request_workflow.py)."""

from __future__ import annotations

import json
import math
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from dashboard_parts import ready
from fixture_paths import PARSL_FIXTURE_DB, PARSL_RUN
from request_workflow import (
    BUSY_S,
    FITTED_SPEC,
    HELD_BYTES,
    LEAN_SPEC,
    LEAN_WALLTIME,
    OTHER_SIMULATE_SPEC,
    SIMULATE_SPEC,
    TRIES,
)
from starlette.testclient import TestClient

from taskscope.dataflow.monitor_events import TaskEvents
from taskscope.dataflow.taskrecord import TaskRecord
from taskscope.store.analysis.report import analyze, as_json
from taskscope.store.analysis.stats import quantile
from taskscope.store.readonly import open_readonly
from taskscope.store.timestamps import parse_timestamp
from taskscope.visualize.app import create_app

pytestmark = pytest.mark.timeout(300)
REQUEST_WORKFLOW = Path(__file__).with_name("request_workflow.py")
MB = 2**20


@dataclass(frozen=True)
class RequestRun:
    path: Path
    run_id: str


@pytest.fixture(scope="module")
def requests_run(tmp_path_factory: pytest.TempPathFactory) -> RequestRun:
    folder = tmp_path_factory.mktemp("requests")
    db = folder / "monitoring.db"
    result = subprocess.run(
        [sys.executable, str(REQUEST_WORKFLOW), str(db), str(folder / "runinfo")],
        check=False,
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    conn = sqlite3.connect(db)
    try:
        (run_id,) = conn.execute("SELECT run_id FROM workflow").fetchone()
    finally:
        conn.close()
    return RequestRun(db, run_id)


def _tries_of(conn: sqlite3.Connection, app: str, spec: dict) -> list[tuple[float, float, float]]:
    """(run s, CPU s, peak RSS) of each try of `app`'s tasks that asked for `spec`, from the
    try and resource tables (the truth the analysis must reproduce)."""
    rows = conn.execute(
        "SELECT y.task_try_time_running, y.task_try_time_returned, "
        "MAX(r.psutil_process_time_user + r.psutil_process_time_system), "
        "MAX(r.psutil_process_memory_resident) FROM try y "
        "JOIN task t ON t.run_id = y.run_id AND t.task_id = y.task_id "
        "JOIN taskscope_task_request q ON q.run_id = y.run_id AND q.task_id = y.task_id "
        "JOIN resource r ON r.run_id = y.run_id AND r.task_id = y.task_id AND r.try_id = y.try_id "
        "WHERE t.task_func_name = ? AND q.resource_specification = ? "
        "GROUP BY y.task_id, y.try_id",
        (app, json.dumps(spec, sort_keys=True)),
    ).fetchall()
    return [
        ((parse_timestamp(end) - parse_timestamp(start)).total_seconds(), cpu, rss)
        for start, end, cpu, rss in rows
    ]


def test_each_task_request_is_stored_as_it_was_made(requests_run):
    conn = sqlite3.connect(requests_run.path)
    try:
        rows = conn.execute(
            "SELECT t.task_func_name, q.resource_specification, q.walltime FROM task t "
            "LEFT JOIN taskscope_task_request q ON q.run_id = t.run_id AND q.task_id = t.task_id "
            "ORDER BY t.task_id"
        ).fetchall()
    finally:
        conn.close()
    stored = [(app, json.loads(spec) if spec else None, walltime) for app, spec, walltime in rows]
    assert stored == (
        [("simulate", SIMULATE_SPEC, None)] * TRIES
        + [("simulate", OTHER_SIMULATE_SPEC, None)]
        + [("lean", LEAN_SPEC, float(LEAN_WALLTIME))] * TRIES
        + [("fitted", {**FITTED_SPEC, "priority": i}, None) for i in range(TRIES)]
        + [("plain", None, None)] * 3
    )


def test_requests_are_compared_with_what_the_tries_used(requests_run):
    conn = open_readonly(requests_run.path)
    try:
        result = analyze(conn, requests_run.run_id)
        truth = _tries_of(conn, "simulate", SIMULATE_SPEC)
    finally:
        conn.close()
    apps = {a.app: a for a in result.apps}
    assert apps["plain"].request is None
    use = apps["simulate"].request
    assert use.requested == SIMULATE_SPEC
    assert (use.tries, use.other_request_tries) == (TRIES, 1)  # the 8-core task is left out
    # What the planted app did: each try kept one thread busy for BUSY_S and held HELD_BYTES.
    assert len(truth) == TRIES
    assert all(cpu >= BUSY_S * 0.95 for _, cpu, _ in truth)
    assert all(rss >= HELD_BYTES for _, _, rss in truth)
    run_s, cpu_s = sum(t[0] for t in truth), sum(t[1] for t in truth)
    # Run times are read in SQL (julianday: whole milliseconds), so they agree to a few ms.
    assert use.cores_used == pytest.approx(cpu_s / run_s, rel=0.01)
    assert use.cores_used <= 1.0  # one Python thread cannot keep more than one core busy
    assert use.cpu_efficiency == pytest.approx(cpu_s / (run_s * 4), rel=0.01)
    peak_p99 = quantile(sorted(t[2] for t in truth), 0.99)
    assert use.peak_rss_p99 == pytest.approx(peak_p99)
    assert use.memory_bytes == 8000 * MB and use.memory_used == pytest.approx(
        peak_p99 / use.memory_bytes
    )
    assert use.time_key == "running_time_min" and use.time_s == 600
    assert use.run_s_p99 == pytest.approx(quantile(sorted(t[0] for t in truth), 0.99), abs=0.002)

    advice = {(a.app, a.setting): a for a in result.advice}
    cores = advice[("simulate", "parsl_resource_specification['cores']")]
    assert (cores.current, cores.suggested) == ("4", "1")
    memory = advice[("simulate", "parsl_resource_specification['memory']")]
    wanted_mb = 256 * math.ceil(peak_p99 * 1.2 / MB / 256)
    assert (memory.current, memory.suggested) == ("8000 MB", f"{wanted_mb} MB")
    assert f"p99 peak {peak_p99 / MB:.0f} MB" in memory.evidence
    minutes = advice[("simulate", "parsl_resource_specification['running_time_min']")]
    assert (minutes.current, minutes.suggested) == ("10 min", "1 min")
    lean_cores = advice[("lean", "parsl_resource_specification['cores']")]
    assert (lean_cores.current, lean_cores.suggested) == ("2", "1")
    lean_p99 = apps["lean"].request.run_s_p99
    assert lean_p99 >= BUSY_S
    walltime = advice[("lean", "walltime")]
    assert (walltime.current, walltime.suggested) == (
        "30 s",
        f"{max(1, math.ceil(lean_p99 * 1.25))} s",
    )
    # `fitted` asks for the one core it keeps busy: nothing to change.
    fitted = apps["fitted"].request
    assert fitted.requested == FITTED_SPEC  # the priorities differ: not a resource
    assert (fitted.tries, fitted.other_request_tries) == (TRIES, 0)
    assert not [a for a in result.advice if a.app == "fitted"]


def test_requests_in_the_json_and_on_the_dashboard(requests_run):
    out = subprocess.run(
        [sys.executable, "-m", "taskscope.cli", "analyze", str(requests_run.path), "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    document = json.loads(out.stdout)
    apps = {a["app"]: a for a in document["apps"]}
    assert apps["lean"]["request"]["requested"] == {**LEAN_SPEC, "walltime": LEAN_WALLTIME}
    assert apps["plain"]["request"] is None
    texts = [a["text"] for a in apps["simulate"]["advice"]]
    assert any(
        t.startswith("`parsl_resource_specification['cores']` of `simulate` 4 → 1") for t in texts
    )
    with TestClient(create_app(requests_run.path)) as client:
        page = ready(client, f"/workflow/{requests_run.run_id}/analysis").text
        part = ready(client, f"/workflow/{requests_run.run_id}/?part=analysis&format=json").json()
    assert "Requested and used" in page and "running_time_min=10" in page
    assert "8000 MB → " in page
    assert "8000 MB → " in part["sections"]["part_analysis"]


def test_a_parsl_database_has_no_requests_and_still_analyses():
    conn = open_readonly(PARSL_FIXTURE_DB)
    try:
        result = analyze(conn, PARSL_RUN)
    finally:
        conn.close()
    assert result.apps and all(a.request is None for a in result.apps)
    json.dumps(as_json(result))


class _Hub:
    def __init__(self) -> None:
        self.sent: list = []

    def send(self, message) -> None:
        self.sent.append(message)


def _record(**fields) -> TaskRecord:
    return TaskRecord(
        id=1, func=len, func_name="app", executor="x", args=(), time_invoked=0.0, **fields
    )


def test_the_kernel_sends_a_request_json_can_hold_whatever_it_holds():
    hub = _Hub()
    events = TaskEvents(hub, "run")
    events.submitted(_record(kwargs={}, resource_specification={"cores": 2, "launcher": object}))
    events.submitted(_record(kwargs={"walltime": 5}))
    events.submitted(_record(kwargs={}))
    odd, timed, plain = hub.sent
    assert json.loads(odd.resource_specification) == {"cores": 2, "launcher": str(object)}
    assert (timed.resource_specification, timed.walltime) == (None, 5.0)
    assert (plain.resource_specification, plain.walltime) == (None, None)
