"""HTML and JavaScript in every text field of a database, checked in headless Chromium: the
markup is shown as text on every page and in every Plotly figure, never run, never a link."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from urllib.parse import quote

import pytest
from hostile_db import APP_NAMES, RUN_ID, create_hostile_database

pytestmark = [pytest.mark.browser, pytest.mark.attack, pytest.mark.timeout(600)]
pytest.importorskip("playwright.sync_api")

from test_browser import browser, serve  # noqa: E402,F401 - the shared Chromium fixture


@pytest.fixture(scope="module")
def hostile_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return create_hostile_database(tmp_path_factory.mktemp("hostile") / "monitoring.db")


@pytest.fixture(scope="module")
def hostile_server(hostile_db: Path):
    yield from serve(hostile_db)


def hostile_pages(db: Path) -> list[str]:
    run = quote(RUN_ID, safe="")
    conn = sqlite3.connect(db)
    try:
        task_with_output = conn.execute(
            "SELECT task_id FROM task WHERE run_id = ? AND task_stdout != '' ORDER BY task_id "
            "LIMIT 1",
            (RUN_ID,),
        ).fetchone()[0]
        failed = conn.execute(
            "SELECT task_id FROM taskscope_try_failure WHERE run_id = 'run-failed' LIMIT 1"
        ).fetchone()[0]
    finally:
        conn.close()
    base = f"/workflow/{run}"
    pages = [
        "/",
        f"{base}/",
        f"{base}/dag",
        f"{base}/dag?view=apps",
        f"{base}/dag?view=apps&colour=state",
        f"{base}/dag?view=around&task=9",
        f"{base}/resources",
        f"{base}/task/{task_with_output}",
        f"{base}/task/0",
        f"/workflow/run-failed/task/{failed}",
        "/workflow/run-failed/resources",
        f"{base}/analysis",
        "/workflow/run-failed/analysis",
        f"{base}/stream",
        f"/workflow/run-failed/diff?against={run}",
    ]
    pages += [f"{base}/app/{quote(app, safe='')}" for app in APP_NAMES.values()]
    pages += [f"{base}/dag?view=tasks&app={quote(app, safe='')}" for app in APP_NAMES.values()]
    return pages


def test_markup_in_every_text_field_is_shown_as_text(browser, hostile_server, hostile_db):  # noqa: F811
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    try:
        for path in hostile_pages(hostile_db):
            response = page.goto(hostile_server + path)
            assert response is not None and response.status == 200, (path, response.status)
            page.wait_for_function(
                "() => [...document.querySelectorAll('[data-part]')].every(e => e.dataset.loaded)",
                timeout=30_000,
            )
            assert page.locator('[data-part][data-loaded="error"]').count() == 0, path
            plots = page.locator("[data-plot]")
            for i in range(plots.count()):
                plots.nth(i).locator(".main-svg, canvas").first.wait_for(timeout=15_000)
                _hover_over(page, i)
            found = page.evaluate("""() => ({
                ran: window.__xss,
                svgLinks: document.querySelectorAll('.js-plotly-plot svg a').length,
                scriptLinks: [...document.querySelectorAll('a[href]')]
                    .filter(a => a.getAttribute('href').trim().toLowerCase()
                                  .startsWith('javascript')).length,
                injected: document.querySelectorAll('img[src="x"], svg[onload], b').length,
                svgText: [...document.querySelectorAll('.js-plotly-plot svg text')]
                    .map(t => t.textContent).join(' '),
                body: document.body.innerText,
            })""")
            assert found["ran"] is None, (path, found["ran"])
            assert found["svgLinks"] == 0 and found["scriptLinks"] == 0, path
            assert found["injected"] == 0, path
            shown = found["body"] + found["svgText"]
            assert any(name in shown for name in APP_NAMES.values()) or "<script>" in shown, path
        assert errors == [] and dialogs == [], (errors, dialogs)
    finally:
        context.close()


def _hover_over(page, index: int) -> None:
    """Hover the middle of plot `index`, so hover labels (which Plotly draws from HTML) show."""
    box = page.locator("[data-plot]").nth(index).bounding_box()
    if box:
        page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        page.wait_for_timeout(100)
