"""``/metrics``: Prometheus text that prometheus_client's parser reads, with the database's
figures, behind the dashboard's token."""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from fixture_paths import PARSL_FIXTURE_DB, PARSL_RUN
from starlette.testclient import TestClient
from test_worker_clock import without_worker_tables

from taskscope.store.synthetic import SyntheticRun, create_database
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
    assert one(families["taskscope_workers_busy"], run="run-live") == tries_on_workers_now(
        taskscope_db, "run-live"
    )
    assert one(families["taskscope_workers_capacity"], run="run-live") == 4
    assert one(families["taskscope_cpu_cores_in_use"], run="run-live") > 0
    assert one(families["taskscope_memory_resident_bytes"], run="run-live") > 0
    assert one(families["taskscope_run_running"], run="run-live") == 1
    assert one(families["taskscope_heartbeat_age_seconds"], run="run-live") >= 0


def tries_on_workers_now(db: Path, run_id: str) -> int:
    """The truth, by brute force over the status history: tries with a running row and no
    running_ended row (both the worker's), join apps (run by the kernel) left out."""
    conn = sqlite3.connect(db)
    try:
        states: dict[tuple[int, int], set[str]] = {}
        for task_id, try_id, state in conn.execute(
            "SELECT task_id, try_id, task_status_name FROM status WHERE run_id = ?", (run_id,)
        ):
            states.setdefault((task_id, try_id), set()).add(state)
        internal = set(
            conn.execute(
                "SELECT task_id, try_id FROM try WHERE run_id = ? AND task_executor IN "
                "('_taskscope_internal', '_parsl_internal')",
                (run_id,),
            ).fetchall()
        )
    finally:
        conn.close()
    return sum(
        1
        for key, seen in states.items()
        if "running" in seen and "running_ended" not in seen and key not in internal
    )


def kernel_running_beyond_workers(db: Path) -> Path:
    """A live run on 2 workers whose state table says `running` of seven tasks: two started
    on a worker and not ended there (the only busy workers), two ended on their worker while
    the kernel has not yet taken their results, two launched that no worker has picked up, and
    a join app the kernel itself runs."""
    create_database(
        db,
        [
            SyntheticRun(
                "live", tasks=40, workers=2, status="running", seed=7, heartbeat_interval=1200.0
            )
        ],
    )
    conn = sqlite3.connect(db)
    pending = [
        t
        for (t,) in conn.execute(
            "SELECT task_id FROM taskscope_task_state WHERE run_id = 'live' AND "
            "state = 'pending' ORDER BY task_id LIMIT 7"
        )
    ]
    assert len(pending) == 7
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    moments = {
        k: now - timedelta(seconds=s)
        for k, s in (("launched", 3.0), ("running", 2.0), ("running_ended", 1.0))
    }
    shapes = [("running",)] * 2 + [("running", "running_ended")] * 2 + [()] * 2
    for task_id, worker_states in zip(pending, shapes + [("running",)], strict=True):
        executor = "_taskscope_internal" if task_id == pending[-1] else "htex"
        conn.execute(
            "INSERT INTO try (try_id, task_id, run_id, task_executor, task_try_time_launched) "
            "VALUES (0, ?, 'live', ?, ?)",
            (task_id, executor, f"{moments['launched']:%Y-%m-%d %H:%M:%S.%f}"),
        )
        for state in ("launched", *worker_states):
            conn.execute(
                "INSERT INTO status (task_id, task_status_name, timestamp, run_id, try_id) "
                "VALUES (?, ?, ?, 'live', 0)",
                (task_id, state, f"{moments[state]:%Y-%m-%d %H:%M:%S.%f}"),
            )
        if worker_states:
            epoch = {s: moments[s].replace(tzinfo=timezone.utc).timestamp() for s in worker_states}
            conn.execute(
                "INSERT INTO taskscope_try_run VALUES ('live', ?, 0, 'w', 'app', ?, ?)",
                (task_id, epoch["running"], epoch.get("running_ended")),
            )
        conn.execute(
            "UPDATE taskscope_task_state SET state = 'running', try_id = 0 "
            "WHERE run_id = 'live' AND task_id = ?",
            (task_id,),
        )
    conn.commit()
    conn.close()
    return db


@pytest.mark.parametrize("source", ["worker tables", "status history"])
def test_workers_busy_is_what_runs_on_workers_not_the_kernel_s_running(tmp_path: Path, source: str):
    db = kernel_running_beyond_workers(tmp_path / "monitoring.db")
    if source == "status history":
        db = without_worker_tables(db, tmp_path / "copy.db")
    families = scrape(db)
    kernel_running = sum(
        v for k, v in families["taskscope_tasks"].items() if dict(k)["state"] == "running"
    )
    capacity = one(families["taskscope_workers_capacity"], run="live")
    assert kernel_running == 7 > capacity == 2
    busy = one(families["taskscope_workers_busy"], run="live")
    assert busy == tries_on_workers_now(db, "live") == 2 <= capacity


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
