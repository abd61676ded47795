"""The JSON data API under /api/: data that is the database's, paging, filters, JSON errors
(never a 500), behind the dashboard's token."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from fixture_paths import PARSL_FIXTURE_DB, PARSL_RUN
from starlette.testclient import TestClient

from taskscope.visualize.app import create_app

TOKEN = "api-test-token-0123456789"


@pytest.fixture(scope="module")
def api(taskscope_db: Path) -> TestClient:
    return TestClient(create_app(taskscope_db))


def get(client: TestClient, path: str, status: int = 200) -> dict:
    response = client.get(path)
    assert response.status_code == status, (path, response.text[:300])
    assert response.headers["content-type"] == "application/json"
    return response.json()


def test_runs_page_through_every_run(api: TestClient, taskscope_db: Path):
    conn = sqlite3.connect(taskscope_db)
    truth = {r for (r,) in conn.execute("SELECT run_id FROM workflow")}
    conn.close()
    seen, path = [], "/api/runs?limit=2"
    while path:
        page = get(api, path if path.startswith("/") else "/api/runs" + path)
        assert page["total"] == len(truth)
        seen += [run["run_id"] for run in page["runs"]]
        path = page["next"]
    assert sorted(seen) == sorted(truth)


def test_run_summary(api: TestClient, taskscope_db: Path):
    summary = get(api, "/api/runs/run-failed")
    conn = sqlite3.connect(taskscope_db)
    tries = conn.execute("SELECT COUNT(*) FROM try WHERE run_id = 'run-failed'").fetchone()[0]
    tasks = conn.execute("SELECT COUNT(*) FROM task WHERE run_id = 'run-failed'").fetchone()[0]
    conn.close()
    assert summary["run"]["run_id"] == "run-failed" and summary["run"]["status"] == "failed"
    assert summary["try_count"] == tries and summary["run"]["task_count"] == tasks
    assert sum(summary["run"]["state_counts"].values()) == tasks
    assert summary["duration"]["count"] > 0
    apps = get(api, "/api/runs/run-failed/apps")["apps"]
    assert sum(a["tasks"] for a in apps) == tasks


def test_tasks_filtered_and_paged(api: TestClient, taskscope_db: Path):
    conn = sqlite3.connect(taskscope_db)
    failed = sorted(
        t
        for (t,) in conn.execute(
            "SELECT task_id FROM taskscope_task_state WHERE run_id = 'run-failed' AND state = "
            "'failed'"
        )
    )
    transform = sorted(
        t
        for (t,) in conn.execute(
            "SELECT task_id FROM task WHERE run_id = 'run-failed' AND task_func_name = 'transform'"
        )
    )
    conn.close()
    page = get(api, "/api/runs/run-failed/tasks?state=failed&limit=1000")
    assert [t["task_id"] for t in page["tasks"]] == failed and page["total"] == len(failed)
    assert all(t["state"] == "failed" for t in page["tasks"])
    seen, path = [], "?app=transform&limit=7"
    while path:
        page = get(api, "/api/runs/run-failed/tasks" + path)
        assert page["total"] == len(transform)
        seen += [t["task_id"] for t in page["tasks"]]
        path = page["next"]
    assert seen == transform


def test_one_task_with_tries_states_and_failures(api: TestClient):
    failed = get(api, "/api/runs/run-failed/tasks?state=failed&limit=1")["tasks"][0]["task_id"]
    task = get(api, f"/api/runs/run-failed/tasks/{failed}")
    assert task["state"] == "failed" and len(task["tries"]) == 3
    assert all(t["failure"]["exception_type"] == "RuntimeError" for t in task["tries"])
    assert [e["state"] for e in task["history"]][-1] == "failed"
    samples = get(api, f"/api/runs/run-failed/tasks/{failed}/resources")["samples"]
    assert samples and {s["try_id"] for s in samples} <= {0, 1, 2}


def test_usage_series(api: TestClient):
    usage = get(api, "/api/runs/run-completed/usage?buckets=50")["usage"]
    assert len(usage["times"]) == len(usage["workers_busy"]) == 50
    assert 0 < max(usage["workers_busy"]) <= usage["capacity"]["workers"] + 1e-6
    # Without a count: 200 buckets, or fewer so that none is finer than a second.
    default = get(api, "/api/runs/run-completed/usage")["usage"]
    span = default["bucket_seconds"] * len(default["times"])
    assert len(default["times"]) == min(200, int(span))
    assert default["bucket_seconds"] >= 1.0 - 1e-9
    exact = get(api, "/api/runs/run-completed/usage?buckets=200")["usage"]
    assert len(exact["times"]) == 200


def test_parsl_database():
    client = TestClient(create_app(PARSL_FIXTURE_DB))
    assert get(client, "/api/runs")["runs"][0]["run_id"] == PARSL_RUN
    page = get(client, f"/api/runs/{PARSL_RUN}/tasks?app=always_fail&state=failed")
    assert page["total"] == 4
    assert get(client, f"/api/runs/{PARSL_RUN}/tasks/1")["app"] == "always_fail"


BAD = [
    ("/api/runs/no-such-run", 404),
    ("/api/runs/no-such-run/tasks", 404),
    ("/api/runs/no-such-run/apps", 404),
    ("/api/runs/no-such-run/usage", 404),
    ("/api/runs/run-failed/tasks/999999", 404),
    ("/api/runs/run-failed/tasks/-1", 404),
    ("/api/runs/run-failed/tasks/" + "9" * 30, 404),
    ("/api/runs/run-failed/tasks/999999/resources", 404),
    ("/api/runs/run-failed/tasks/abc", 404),
    ("/api/nothing-here", 404),
    ("/api/runs/run-failed/tasks?state=bogus", 400),
    ("/api/runs/run-failed/tasks?limit=0", 400),
    ("/api/runs/run-failed/tasks?limit=abc", 400),
    ("/api/runs/run-failed/tasks?offset=-5", 400),
    ("/api/runs/run-failed/tasks?sort=evil;drop", 400),
    ("/api/runs?limit=100000", 400),
    ("/api/runs/run-failed/usage?buckets=999999", 400),
    ("/api/runs/%00/tasks", 404),
    ("/api/runs/" + "x" * 5000, 404),
]


@pytest.mark.parametrize("path,status", BAD)
def test_bad_requests_are_json_errors(api: TestClient, path: str, status: int):
    body = get(api, path, status)
    assert body["status"] == status and body["error"]


def test_read_only(api: TestClient):
    response = api.post("/api/runs")
    assert response.status_code == 405 and response.json()["status"] == 405


def test_empty_database(empty_db: Path):
    client = TestClient(create_app(empty_db))
    assert get(client, "/api/runs")["runs"] == []
    get(client, "/api/runs/anything", 404)


def test_api_needs_the_token(taskscope_db: Path):
    client = TestClient(create_app(taskscope_db, token=TOKEN), follow_redirects=False)
    assert client.get("/api/runs").status_code == 401
    response = client.get("/api/runs", headers={"Authorization": f"token {TOKEN}"})
    assert response.status_code == 200 and response.json()["total"] > 0
