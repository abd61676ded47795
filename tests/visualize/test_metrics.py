"""``/metrics``: Prometheus text that prometheus_client's parser reads, with the database's
figures, behind the dashboard's token."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from fixture_paths import PARSL_FIXTURE_DB, PARSL_RUN
from starlette.testclient import TestClient

from taskscope.visualize.app import create_app

parser = pytest.importorskip("prometheus_client.parser")
TOKEN = "metrics-test-token-0123456789"


def scrape(db: Path) -> dict[str, dict[tuple, float]]:
    response = TestClient(create_app(db)).get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    families = {}
    for family in parser.text_string_to_metric_families(response.text):
        families[family.name] = {
            tuple(sorted(sample.labels.items())): sample.value for sample in family.samples
        }
    return families


def one(family: dict[tuple, float], **labels: str) -> float:
    return family[tuple(sorted(labels.items()))]


def test_live_run_figures_are_the_database_s(taskscope_db: Path):
    families = scrape(taskscope_db)
    conn = sqlite3.connect(taskscope_db)
    by_app_state = conn.execute(
        "SELECT t.task_func_name, z.state, COUNT(*) FROM taskscope_task_state z JOIN task t "
        "USING (run_id, task_id) WHERE run_id = 'run-live' GROUP BY 1, 2"
    ).fetchall()
    stateless = conn.execute(
        "SELECT t.task_func_name, COUNT(*) FROM task t WHERE run_id = 'run-live' AND NOT EXISTS "
        "(SELECT 1 FROM taskscope_task_state z WHERE z.run_id = t.run_id AND z.task_id = t.task_id)"
        " GROUP BY 1"
    ).fetchall()
    tries = conn.execute("SELECT COUNT(*) FROM try WHERE run_id = 'run-live'").fetchone()[0]
    failed = conn.execute(
        "SELECT COUNT(*) FROM taskscope_try_failure WHERE run_id = 'run-live'"
    ).fetchone()[0]
    conn.close()
    truth = {(app, state): n for app, state, n in by_app_state}
    for app, n in stateless:
        truth[(app, "pending")] = truth.get((app, "pending"), 0) + n
    tasks = {
        dict(k)["app"] + "/" + dict(k)["state"]: v
        for k, v in families["taskscope_tasks"].items()
        if dict(k)["run"] == "run-live"
    }
    assert tasks == {f"{app}/{state}": n for (app, state), n in truth.items()}
    assert one(families["taskscope_tries"], run="run-live") == tries
    assert one(families["taskscope_failed_tries"], run="run-live") == failed
    running = sum(n for (_, state), n in truth.items() if state == "running")
    assert one(families["taskscope_workers_busy"], run="run-live") == running > 0
    assert one(families["taskscope_workers_capacity"], run="run-live") == 4
    assert one(families["taskscope_cpu_cores_in_use"], run="run-live") > 0
    assert one(families["taskscope_memory_resident_bytes"], run="run-live") > 0
    assert one(families["taskscope_run_running"], run="run-live") == 1
    assert one(families["taskscope_heartbeat_age_seconds"], run="run-live") >= 0


def test_finished_runs_report_nothing_in_use(taskscope_db: Path):
    families = scrape(taskscope_db)
    assert one(families["taskscope_run_running"], run="run-failed") == 0
    assert one(families["taskscope_workers_busy"], run="run-failed") == 0
    assert one(families["taskscope_cpu_cores_in_use"], run="run-failed") == 0
    # a finished run has no age of its last event: the gauge is absent, not stale
    assert ("run", "run-failed") not in {k[0] for k in families["taskscope_last_event_age_seconds"]}


def test_parsl_database(tmp_path: Path):
    families = scrape(PARSL_FIXTURE_DB)
    tasks = {k: v for k, v in families["taskscope_tasks"].items() if dict(k)["run"] == PARSL_RUN}
    assert sum(tasks.values()) == 275
    assert one(families["taskscope_tasks"], run=PARSL_RUN, app="always_fail", state="failed") == 4
    assert one(families["taskscope_tries"], run=PARSL_RUN) == 292


def test_empty_database_is_an_empty_exposition(empty_db: Path):
    families = scrape(empty_db)
    assert families["taskscope_tasks"] == {}
    assert "taskscope_scrape_seconds" in families


def test_metrics_need_the_token(taskscope_db: Path):
    client = TestClient(create_app(taskscope_db, token=TOKEN), follow_redirects=False)
    assert client.get("/metrics").status_code == 401
    response = client.get("/metrics", headers={"Authorization": f"token {TOKEN}"})
    assert response.status_code == 200 and "taskscope_tasks" in response.text


def test_a_scrape_serves_the_last_read_and_refreshes_in_the_background(
    taskscope_db: Path, tmp_path: Path, monkeypatch
):
    import shutil
    import time

    from taskscope.visualize import metrics

    db = tmp_path / "monitoring.db"
    shutil.copy(taskscope_db, db)
    monkeypatch.setattr(metrics, "MAX_AGE_S", 0.2)
    client = TestClient(create_app(db))

    def tries() -> float:
        text = client.get("/metrics").text
        families = {f.name: f for f in parser.text_string_to_metric_families(text)}
        sample = next(
            s for s in families["taskscope_tries"].samples if s.labels["run"] == "run-live"
        )
        return sample.value

    before = tries()
    conn = sqlite3.connect(db)
    conn.execute(
        "INSERT INTO try (try_id, task_id, run_id, task_executor) "
        "VALUES (99, 0, 'run-live', 'htex')"
    )
    conn.commit()
    conn.close()
    deadline = time.monotonic() + 30
    seen = before
    while seen == before and time.monotonic() < deadline:
        time.sleep(0.1)
        seen = tries()  # the first of these starts the read, a later one shows it
    assert seen == before + 1


def test_unwritten_events_in_the_spool(taskscope_db: Path, tmp_path: Path):
    import shutil

    from taskscope.store.messages import TaskStatus, encode_batch
    from taskscope.store.spool import SpoolWriter, new_stream_id, spool_dir

    db = tmp_path / "monitoring.db"
    shutil.copy(taskscope_db, db)
    assert one(scrape(db)["taskscope_unwritten_events"]) == 0
    writer = SpoolWriter(spool_dir(db), new_stream_id("kernel"))
    # a killed run's last frame: 7 events the database never got
    writer.append(
        encode_batch([TaskStatus("run-live", 1000 + i, 0, "exec_done", 1.7e9) for i in range(7)])
    )
    writer.close()
    families = scrape(db)
    assert one(families["taskscope_unwritten_events"]) == 7
    assert one(families["taskscope_writer_catching_up"]) == 0  # no writer owns them
