"""Every route on Parsl's fixture, a taskscope database, an empty database and a crashed run."""

from __future__ import annotations

import re
import shutil
import sqlite3
import threading
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from starlette.testclient import TestClient

from taskscope.visualize.app import create_app

PARSL_RUN = "85029df9-5f8e-4ab7-810a-f8db9f552f59"


def client_for(path: Path) -> TestClient:
    return TestClient(create_app(path))


def run_routes(run_id: str, app: str, task_id: int) -> list[str]:
    base = f"/workflow/{run_id}"
    return [
        f"{base}/",
        f"{base}/?gantt_page=2",
        f"{base}/dag",
        f"{base}/dag?colour=state",
        f"{base}/dag?view=apps",
        f"{base}/dag?view=apps&colour=state",
        f"{base}/dag?view=tasks&app={app}",
        f"{base}/dag?view=tasks&first=5&limit=20",
        f"{base}/dag?view=around&task={task_id}",
        f"{base}/dag?view=around&task={task_id}&depth=1",
        f"{base}/resources",
        f"{base}/app/{app}",
        f"{base}/app/{app}?state=exec_done&page=2",
        f"{base}/app/{app}?sort=duration&order=desc",
        f"{base}/task/{task_id}",
    ]


def with_param(path: str, param: str) -> str:
    return path + ("&" if "?" in path else "?") + param


def part_names(html: str) -> list[str]:
    return re.findall(r'data-part="([^"]+)"', html)


def full_page(client: TestClient, path: str) -> str:
    """The page as a browser ends up showing it: the HTML plus each deferred part's HTML."""
    response = client.get(path)
    assert response.status_code == 200, (path, response.text[:500])
    html = response.text
    for name in part_names(html):
        part = client.get(with_param(path, f"part={name}&format=json"))
        assert part.status_code == 200, (path, name, part.text[:500])
        html += "".join(part.json()["sections"].values())
    return html


def assert_all_ok(client: TestClient, paths: list[str]) -> None:
    for path in paths:
        full_page(client, path)
        response = client.get(with_param(path, "format=json"))
        assert response.status_code == 200, (path, response.text[:500])


def test_parsl_fixture_every_route(parsl_db: Path):
    client = client_for(parsl_db)
    home = client.get("/")
    assert home.status_code == 200 and "diamond-sample" in home.text
    assert_all_ok(client, ["/", "/?sort=duration&order=asc", "/?name=diamond-sample"])
    assert_all_ok(client, run_routes(PARSL_RUN, "join", 1) + [f"/workflow/{PARSL_RUN}/task/269"])


def test_parsl_summary_shows_app_table_and_local_time(parsl_db: Path):
    page = full_page(client_for(parsl_db), f"/workflow/{PARSL_RUN}/")
    for app in ("always_fail", "cpu_burn", "echo_bash", "memo_square", "fan_in"):
        assert f'href="app/{app}"' in page
    assert "local time" in page and "htex_local" in page


def test_task_page_shows_failure_and_links(parsl_db: Path):
    page = client_for(parsl_db).get(f"/workflow/{PARSL_RUN}/task/1").text
    assert "deliberate failure for input 0" in page
    assert 'href="0"' in page and 'href="3"' in page  # dependency and dependent
    assert "fail_retryable" in page and "../app/always_fail" in page


def test_taskscope_database_every_run(taskscope_db: Path):
    client = client_for(taskscope_db)
    home = client.get("/").text
    for run_id in ("run-completed", "run-failed", "run-lost", "run-live", "run-noresources"):
        assert run_id[:13] in home
        assert_all_ok(client, run_routes(run_id, "transform", 4))
    assert ">lost<" in home and ">running<" in home and "UTC" in home


def test_taskscope_task_shows_traceback_and_output_tail(taskscope_db: Path):
    client = client_for(taskscope_db)
    failed = client.get("/workflow/run-failed/app/transform?state=failed").text
    task_id = re.search(r'href="\.\./task/(\d+)"', failed).group(1)
    page = client.get(f"/workflow/run-failed/task/{task_id}").text
    assert "Traceback (most recent call last)" in page and "RuntimeError" in page
    done = client.get("/workflow/run-completed/task/9").text  # a summarize task with stdout
    assert "line 29 of task 9" in done and "synthetic stderr" in done


def test_live_run_pages_refresh_and_finished_do_not(taskscope_db: Path):
    client = client_for(taskscope_db)
    live = client.get("/workflow/run-live/")
    assert 'data-live="1"' in live.text
    data = client.get("/workflow/run-live/?format=json").json()
    assert data["live"] is True and "run_details" in data["sections"]
    timeline = client.get("/workflow/run-live/?part=timeline&format=json").json()
    assert timeline["live"] is True and "timeline" in timeline["figures"]  # refreshed live
    assert 'data-live="0"' in client.get("/workflow/run-completed/").text
    assert client.get("/workflow/run-completed/?format=json").json()["live"] is False


def test_crashed_run_is_lost_everywhere(taskscope_db: Path):
    client = client_for(taskscope_db)
    page = client.get("/workflow/run-lost/").text
    assert "lost" in page and "probably died" in page
    assert client.get("/workflow/run-lost/resources").status_code == 200


@pytest.mark.parametrize("db", ["empty_db", "blank_file_db"])
def test_empty_database_pages(db: str, request: pytest.FixtureRequest):
    client = client_for(request.getfixturevalue(db))
    home = client.get("/")
    assert home.status_code == 200
    assert "no run" in home.text.lower()
    for path in (
        "/workflow/x/",
        "/workflow/x/dag",
        "/workflow/x/resources",
        "/workflow/x/app/a",
        "/workflow/x/task/1",
    ):
        assert client.get(path).status_code == 404


def test_unknown_ids_and_malformed_params(parsl_db: Path):
    client = client_for(parsl_db)
    for path in (
        "/workflow/nope/",
        f"/workflow/{PARSL_RUN}/task/999999",
        f"/workflow/{PARSL_RUN}/task/abc",
        f"/workflow/{PARSL_RUN}/app/no_such_app",
        f"/workflow/{PARSL_RUN}/task/{2**63}",
        f"/workflow/{PARSL_RUN}/task/{10**30}",
        "/no/such/page",
    ):
        response = client.get(path)
        assert response.status_code == 404 and "Back to the list" in response.text
    assert client.get(f"/workflow/{PARSL_RUN}/dag?view=around&task=999999").status_code == 404
    assert client.get(f"/workflow/{PARSL_RUN}/dag?view=around&task={10**30}").status_code == 404
    for path in (
        "/?page=-3&sort=DROP%20TABLE&order=sideways",
        f"/workflow/{PARSL_RUN}/?gantt_page=zz",
        f"/workflow/{PARSL_RUN}/dag?view=bogus&colour=1&first=x&limit=-5",
        f"/workflow/{PARSL_RUN}/app/join?page=1e9&state=%27;--&sort=x",
        f"/workflow/{PARSL_RUN}/app/join?page=99999",
        f"/workflow/{PARSL_RUN}/dag?view=around&task=x&depth=-4",
        f"/workflow/{PARSL_RUN}/dag?view=around&task=3&depth=zz&limit=1",
        f"/?page={10**30}&per_page={10**30}",
        f"/workflow/{PARSL_RUN}/app/join?page={10**30}",
        f"/workflow/{PARSL_RUN}/dag?view=around&task=3&depth={10**30}",
        f"/workflow/{PARSL_RUN}/dag?view=tasks&first={10**30}&limit={10**30}",
    ):
        assert client.get(path).status_code == 200, path


def test_database_being_written(tmp_path: Path, parsl_db: Path):
    """A writer holding an exclusive lock (Parsl's rollback journal) delays a read: the page
    is served once the lock goes, never a 500."""
    path = tmp_path / "busy.db"
    shutil.copy(parsl_db, path)
    writer = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    writer.execute("BEGIN EXCLUSIVE")
    release = threading.Timer(0.4, lambda: writer.execute("COMMIT"))
    release.start()
    try:
        response = client_for(path).get(f"/workflow/{PARSL_RUN}/")
    finally:
        release.join()
        writer.close()
    assert response.status_code == 200


def external_urls(text: str) -> list[str]:
    hosts = []
    for url in re.findall(r"""(?:src|href)\s*=\s*["']?((?:https?:)?//[^"'\s>]+)""", text):
        host = urlsplit(url if ":" in url.split("//")[0] else "http:" + url).hostname
        if host not in ("127.0.0.1", "localhost", "testserver"):
            hosts.append(url)
    hosts += list(re.findall(r"""url\(\s*["']?(https?://[^)"']+)""", text))
    hosts += list(re.findall(r"""@import\s+["']?(https?://[^"';]+)""", text))
    return hosts


def test_no_page_or_asset_references_an_external_url(parsl_db: Path, taskscope_db: Path):
    pages = [(parsl_db, p) for p in ["/"] + run_routes(PARSL_RUN, "join", 1)]
    pages += [(taskscope_db, p) for p in ["/"] + run_routes("run-live", "transform", 4)]
    for db, path in pages:
        response = client_for(db).get(path)
        assert external_urls(response.text) == [], path
        links = re.findall(r"""(?:src|href)=["']([^"']+)["']""", response.text)
        assert not [link for link in links if link.startswith("/")], (path, "absolute link")
    client = client_for(parsl_db)
    for asset in ("/static/style.css", "/static/dashboard.js"):  # favicon.svg: xmlns only
        text = client.get(asset).text
        assert not re.findall(r"https?://", text), asset
    assert client.get("/static/plotly.min.js").status_code == 200


def only_run_id(db: Path) -> str:
    conn = sqlite3.connect(db)
    try:
        return conn.execute("SELECT run_id FROM workflow").fetchone()[0]
    finally:
        conn.close()


def task_id_of(db: Path, app: str) -> int:
    conn = sqlite3.connect(db)
    try:
        return conn.execute(
            "SELECT MIN(task_id) FROM task WHERE task_func_name = ?", (app,)
        ).fetchone()[0]
    finally:
        conn.close()


@pytest.mark.parametrize("db", ["real_db", "real_db_without_state"])
def test_real_taskscope_database_every_route(db: str, request: pytest.FixtureRequest):
    """A database written by taskscope's monitoring, as the writer leaves it (with
    taskscope_task_state) and without that table (states from the status history)."""
    path = request.getfixturevalue(db)
    run_id = only_run_id(path)
    client = client_for(path)
    home = client.get("/").text
    assert "real-sample" in home and "failed" in home  # one task failed for good
    assert_all_ok(client, run_routes(run_id, "combine", task_id_of(path, "combine")))
    summary = full_page(client, f"/workflow/{run_id}/")
    for app in ("generate", "combine", "flaky", "ratio", "percent", "square", "shout", "refine"):
        assert f'href="app/{app}"' in summary
    assert "threads" in summary  # the executor
    doomed = client.get(f"/workflow/{run_id}/task/{task_id_of(path, 'percent')}").text
    assert "dep_fail" in doomed
    failed = client.get(f"/workflow/{run_id}/task/{task_id_of(path, 'ratio')}").text
    assert "ZeroDivisionError" in failed and "division by zero" in failed
    retried = client.get(f"/workflow/{run_id}/task/{task_id_of(path, 'flaky')}").text
    assert "fail_retryable" in retried and "transient failure" in retried
    shout = client.get(f"/workflow/{run_id}/task/{task_id_of(path, 'shout')}").text
    assert "hello-dashboard" in shout and "to-stderr" in shout  # output tails
    failed_list = client.get(f"/workflow/{run_id}/app/ratio?state=failed").text
    assert f'href="../task/{task_id_of(path, "ratio")}"' in failed_list


def test_state_table_and_fallback_show_the_same_counts(
    real_db: Path, real_db_without_state: Path, taskscope_db: Path, taskscope_db_without_state: Path
):
    def counts_section(db: Path, run_id: str) -> str:
        """The Tasks card (counts by state, tries) and the app table, without times."""
        client = client_for(db)
        details = client.get(f"/workflow/{run_id}/?format=json").json()["sections"]
        card = re.search(r"<h3>Tasks</h3>.*?</section>", details["run_details"], re.DOTALL).group(0)
        apps = client.get(f"/workflow/{run_id}/?part=apps&format=json").json()["sections"]
        table = re.sub(r"<td class=\"num\">[^<]*\d s</td>", "", apps["part_apps"])  # means
        states = client.get(f"/workflow/{run_id}/?part=states&format=json").json()["sections"]
        assert "chip" in states["part_states"]  # counts by state are there to compare
        return re.sub(r"\s+", " ", card + table + states["part_states"])

    assert counts_section(real_db, only_run_id(real_db)) == counts_section(
        real_db_without_state, only_run_id(real_db)
    )
    for run_id in ("run-failed", "run-live", "run-lost"):
        assert counts_section(taskscope_db, run_id) == counts_section(
            taskscope_db_without_state, run_id
        ), run_id


def test_network_listen_withholds_output_files_unless_asked(taskscope_db: Path):
    page = "/workflow/run-completed/task/9"  # a task whose stdout file exists
    hidden = TestClient(create_app(taskscope_db, show_files=False)).get(page).text
    assert "line 29 of task 9" not in hidden and "synthetic stderr" not in hidden
    assert "task-9.out" in hidden  # the path is still shown
    assert "--show-files" in hidden  # and the page says why and how
    shown = TestClient(create_app(taskscope_db, show_files=True)).get(page).text
    assert "line 29 of task 9" in shown


def test_templates_compiled_at_start_render_the_same_pages(taskscope_db: Path):
    """The CLI compiles every template before it listens: each compiles, and the pages are
    the ones compiled on first use give (but for the moment each was generated)."""
    warmed = TestClient(create_app(taskscope_db, compile_templates=True))
    lazy = client_for(taskscope_db)
    generated = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d")
    for path in run_routes("run-failed", "transform", 4):
        a, b = full_page(warmed, path), full_page(lazy, path)
        assert generated.sub("", a) == generated.sub("", b), path


def test_dag_next_page_link_follows_the_tasks_asked_for_not_their_context(parsl_db):
    """Parsl's fixture has 60 `join` tasks listing 120 dependencies between them."""
    client = client_for(parsl_db)
    base = f"/workflow/{PARSL_RUN}/dag?view=tasks&app=join"
    with sqlite3.connect(parsl_db) as conn:
        joins = [
            r[0]
            for r in conn.execute(
                "SELECT task_id FROM task WHERE task_func_name = 'join' ORDER BY task_id"
            )
        ]
    page = client.get(f"{base}&limit=10").text
    (first,) = re.findall(r"first=(\d+)\">next 10 tasks", page)
    assert int(first) == joins[9] + 1  # after the tenth join, whatever its context's ids
    # All 60 fit in a page of 61 (drawn with their context, more than 61 nodes): no next page.
    assert "next 61 tasks" not in client.get(f"{base}&limit=61").text
