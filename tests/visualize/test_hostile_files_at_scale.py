"""Hostile stdout/stderr paths in a big run (10^5 tasks here, 10^6 under `make soak`): every
page of the run answers, none with a server error and none hanging, the hostile tasks' pages
show each path with its reason, and no page shows what a hostile path holds.

The failed tasks (one in a hundred, in four exception groups) all name hostile stderr paths,
so the failure analysis, which reads the stderr tail of each group's latest failure, meets
them too."""

from __future__ import annotations

import sqlite3
import threading

import pytest
from big_db import EXCEPTIONS, RUN, create_big_database
from dashboard_parts import ready
from hostile_files import hostile_paths
from starlette.testclient import TestClient

from taskscope.visualize.app import create_app

pytestmark = [pytest.mark.attack, pytest.mark.timeout(1800)]

# A page that has not answered by then hangs (the server's own read deadline is 60 s).
HANG_S = 180.0
ENVIRON_LEAK = "PATH="  # in /proc/self/environ of every process here


@pytest.fixture(
    scope="module",
    params=[pytest.param(10**5, id="1e5"), pytest.param(10**6, id="1e6", marks=pytest.mark.soak)],
)
def big_hostile_db(request, tmp_path_factory):
    """(database, tasks, {task id: (path, reason)}) of a big run naming hostile paths."""
    tasks = request.param
    folder = tmp_path_factory.mktemp(f"big-hostile-{tasks}-tasks-")
    files = folder / "files"
    files.mkdir()
    cases = list(hostile_paths(files).values())
    db = create_big_database(folder / "monitoring.db", tasks)
    # Succeeded tasks spread over the run, first and last among them, name one case each.
    step = (tasks - 2) // (len(cases) - 1)
    planted = {k * step: case for k, case in enumerate(cases)}
    planted[tasks - 2] = planted.pop((len(cases) - 1) * step)
    conn = sqlite3.connect(db)
    try:
        conn.executemany(
            "UPDATE task SET task_stdout = ?, task_stderr = ? WHERE run_id = ? AND task_id = ?",
            [(path, path, RUN, task_id) for task_id, (path, _) in planted.items()],
        )
        # Every failed task (ids 99, 199, ...) names one of the cases as its stderr.
        conn.execute("CREATE TEMP TABLE hostile (k INTEGER PRIMARY KEY, path TEXT)")
        conn.executemany("INSERT INTO hostile VALUES (?, ?)", enumerate(p for p, _ in cases))
        conn.execute(
            "UPDATE task SET task_stderr = (SELECT path FROM hostile WHERE k = "
            "(task_id / 100) % ?) WHERE run_id = ? AND task_id % 100 = 99",
            (len(cases), RUN),
        )
        conn.commit()
    finally:
        conn.close()
    assert all(tid % 100 != 99 for tid in planted)  # planted tasks succeeded
    return db, tasks, planted


def pages(tasks: int, planted: list[int]) -> list[str]:
    """Every page and deferred part of the run (as bench/dashboard.py times them), the JSON
    API, and the page of each task that names a hostile path."""
    base, api = f"/workflow/{RUN}", f"/api/runs/{RUN}"
    middle = tasks // 2 + 3
    urls = [
        "/",
        f"{base}/",
        f"{base}/?format=json",
        *(f"{base}/?part={part}&format=json" for part in ("apps", "durations", "states")),
        f"{base}/?part=timeline&format=json",
        f"{base}/?part=analysis&format=json",
        f"{base}/analysis",
        f"{base}/dag",
        f"{base}/dag?view=tasks",
        f"{base}/dag?view=around&task={middle}",
        f"{base}/stream",
        f"{base}/resources",
        *(
            f"{base}/resources?part={part}&format=json"
            for part in ("usage_workers", "usage_samples", "distributions")
        ),
        f"{base}/app/summarize",
        f"{base}/app/summarize?state=failed",
        f"{base}/app/summarize?sort=duration&order=desc",
        f"{base}/task/{middle}",
        f"{base}/task/99",  # a failed task naming a hostile stderr
        "/api/runs",
        api,
        f"{api}/apps",
        f"{api}/tasks",
        f"{api}/tasks?state=failed",
        f"{api}/usage",
        "/metrics",
    ]
    for task_id in planted:
        urls += [f"{base}/task/{task_id}", f"{api}/tasks/{task_id}"]
    return urls


def get_within(client: TestClient, url: str) -> tuple[int, str]:
    """The page's status and text; the test fails, instead of hanging, if it never answers."""
    answer: list[tuple[int, str]] = []

    def fetch() -> None:
        response = ready(client, url, timeout=HANG_S)  # as a browser waits for the analysis
        answer.append((response.status_code, response.text))

    worker = threading.Thread(target=fetch, daemon=True)
    worker.start()
    worker.join(HANG_S)
    assert answer, f"{url} did not answer within {HANG_S:.0f} s"
    return answer[0]


def test_every_page_of_a_big_run_naming_hostile_files_answers_and_shows_none(big_hostile_db):
    db, tasks, planted = big_hostile_db
    client = TestClient(create_app(db), raise_server_exceptions=False)
    answers = {url: get_within(client, url) for url in pages(tasks, list(planted))}
    failures = {
        url: (status, text[:300]) for url, (status, text) in answers.items() if status != 200
    }
    assert failures == {}
    leaks = [url for url, (_, text) in answers.items() if ENVIRON_LEAK in text]
    assert leaks == []
    for task_id, (path, reason) in planted.items():
        _, text = answers[f"/workflow/{RUN}/task/{task_id}"]
        assert path in text and reason in text, (task_id, path, reason)
    # The failure analysis found the four groups of failures (so it read their examples).
    _, analysis = answers[f"/workflow/{RUN}/analysis"]
    for exception_type in EXCEPTIONS:
        assert exception_type in analysis
