"""The analysis on the dashboard: failure groups on the workflow page, the analysis page,
the critical path over the DAG and the timeline, and the run-comparison page."""

from __future__ import annotations

import json

import pytest
from dashboard_parts import ready
from fixture_paths import PARSL_FIXTURE_DB, PARSL_RUN
from starlette.testclient import TestClient

from taskscope.visualize.app import create_app

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def client(planted):
    with TestClient(create_app(planted.path)) as c:
        yield c


def test_failure_groups_top_the_workflow_page(client, planted):
    page = client.get(f"/workflow/{planted.second_run}/")
    assert page.status_code == 200
    assert 'data-part="analysis"' in page.text and 'href="analysis"' in page.text
    part = ready(client, f"/workflow/{planted.second_run}/?part=analysis&format=json")
    assert part.status_code == 200
    html = part.json()["sections"]["part_analysis"]
    assert "Why tasks failed" in html
    for text in (
        "KeyError: &lt;str&gt; @ lookup",
        "bash exit code 3",
        "worker lost",
        "walltime",
        "dependency",
        "serialization",
        "ZeroDivisionError",
        "new",
        "recurring",
    ):
        assert text in html, text
    assert (
        "Gone since the previous run" in html
        and "bash exit code 7" not in html.split("Gone since")[0]
    )
    assert "dependency-bound" in html or "worker-bound" in html or "overhead-bound" in html
    assert 'href="task/16"' in html and 'href="task/17"' in html  # the stragglers


def test_analysis_page_shows_every_section(client, planted):
    page = ready(client, f"/workflow/{planted.first_run}/analysis")
    assert page.status_code == 200
    text = page.text
    for heading in (
        "Failure groups",
        "Critical path",
        "Stragglers",
        "Hosts and blocks",
        "Efficiency per app",
        "Advice",
    ):
        assert heading in text, heading
    assert "KeyError: &#39;sample-" in text  # an example traceback
    assert "tar: part" in text  # an example stderr tail
    assert 'data-figure="critical_path"' in text
    figure = json.loads(text.split('data-figure="critical_path">')[1].split("</script>")[0])
    assert figure["data"][0]["y"] == ["0 stage", "1 stage", "2 stage", "3 stage"]
    assert "<code>walltime</code> of <code>slow_io</code>" in text
    live = ready(client, f"/workflow/{planted.first_run}/analysis?format=json")
    assert live.status_code == 200 and "analysis_body" in live.json()["sections"]


def test_critical_path_is_drawn_on_the_dag_and_the_timeline(client, planted):
    dag = client.get(f"/workflow/{planted.first_run}/dag?view=tasks&format=json")
    traces = dag.json()["figures"]["dag"]["data"]
    path = [t for t in traces if t.get("name") == "critical path"]
    assert len(path) == 1 and path[0]["customdata"] == ["task/0", "task/1", "task/2", "task/3"]
    summary = client.get(f"/workflow/{planted.first_run}/?part=timeline&format=json")
    gantt = [
        t
        for t in summary.json()["figures"]["window_gantt"]["data"]
        if t.get("name") == "critical path"
    ]
    assert len(gantt) == 1 and gantt[0]["y"] == ["0 stage", "1 stage", "2 stage", "3 stage"]


def test_compare_page_defaults_to_the_previous_run(client, planted):
    page = ready(client, f"/workflow/{planted.second_run}/diff")
    assert page.status_code == 200
    assert planted.first_run in page.text and "regression" in page.text
    assert "divide" in page.text and "compress" in page.text
    chosen = ready(client, f"/workflow/{planted.first_run}/diff?against={planted.second_run}")
    assert chosen.status_code == 200
    missing = ready(client, f"/workflow/{planted.first_run}/diff?against=nope")
    assert missing.status_code == 404 and "nope" in missing.text
    assert client.get("/workflow/nope/analysis").status_code == 404
    assert client.get("/workflow/nope/diff").status_code == 404


def test_parsl_database_analysis_page_and_lone_run_compare():
    with TestClient(create_app(PARSL_FIXTURE_DB)) as c:
        page = ready(c, f"/workflow/{PARSL_RUN}/analysis")
        assert page.status_code == 200
        assert "ValueError: deliberate failure for input &lt;n&gt; @ always_fail" in page.text
        part = ready(c, f"/workflow/{PARSL_RUN}/?part=analysis&format=json")
        assert part.status_code == 200
        lone = ready(c, f"/workflow/{PARSL_RUN}/diff")
        assert lone.status_code == 200 and "no other run of this workflow" in lone.text
