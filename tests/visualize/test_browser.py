"""The dashboard in headless Chromium against a real uvicorn server."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from browser_support import chromium_or_skip

pytestmark = pytest.mark.browser
playwright_api = pytest.importorskip("playwright.sync_api")

ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PARSL_RUN = "85029df9-5f8e-4ab7-810a-f8db9f552f59"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def serve(db: Path):
    import uvicorn

    from taskscope.visualize.app import create_app

    port = free_port()
    config = uvicorn.Config(create_app(db), host="127.0.0.1", port=port, log_level="error")
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not srv.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert srv.started, "uvicorn did not start"
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def server(parsl_db: Path):
    yield from serve(parsl_db)


@pytest.fixture(scope="module")
def taskscope_server(taskscope_db: Path):
    yield from serve(taskscope_db)


@pytest.fixture(scope="module")
def browser():
    chromium = chromium_or_skip()
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium, args=ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser, server):
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    pg = context.new_page()
    pg.errors = []
    pg.foreign = []
    pg.on("console", lambda m: pg.errors.append(m.text) if m.type == "error" else None)
    pg.on("pageerror", lambda e: pg.errors.append(str(e)))

    def check_request(request):
        host = urlsplit(request.url).hostname
        if request.url.startswith("http") and host != "127.0.0.1":
            pg.foreign.append(request.url)

    pg.on("request", check_request)
    yield pg
    context.close()


PAGES = [
    "/",
    f"/workflow/{PARSL_RUN}/",
    f"/workflow/{PARSL_RUN}/dag",
    f"/workflow/{PARSL_RUN}/dag?view=around&task=269",
    f"/workflow/{PARSL_RUN}/dag?colour=state",
    f"/workflow/{PARSL_RUN}/dag?view=apps",
    f"/workflow/{PARSL_RUN}/resources",
    f"/workflow/{PARSL_RUN}/app/join",
    f"/workflow/{PARSL_RUN}/task/1",
]


def test_every_page_draws_without_console_errors(page, server):
    for path in PAGES:
        page.goto(server + path)
        page.wait_for_load_state("load")
        # deferred parts (app table, durations, resource plots) arrive after the page
        page.wait_for_function(
            "() => [...document.querySelectorAll('[data-part]')].every(e => e.dataset.loaded)",
            timeout=20_000,
        )
        assert page.locator('[data-part][data-loaded="error"]').count() == 0, path
        plots = page.locator("[data-plot]")
        for i in range(plots.count()):
            plot = plots.nth(i)
            plot.locator(".main-svg, canvas").first.wait_for(timeout=10_000)
            assert plot.get_attribute("data-drawn") == "1" or plot.locator(".main-svg").count()
        assert page.errors == [], (path, page.errors)
    assert page.foreign == [], page.foreign


def test_click_workflow_name_opens_summary(page, server):
    page.goto(server + "/")
    page.get_by_role("link", name="diamond-sample").first.click()
    page.wait_for_url(f"**/workflow/{PARSL_RUN}/")
    assert page.locator("h2", has_text="App summary").count() == 1
    page.get_by_role("link", name="cpu_burn").first.click()  # in the deferred app table
    page.wait_for_url("**/app/cpu_burn")
    page.get_by_role("link", name="diamond-sample").click()  # breadcrumb back to the run
    page.wait_for_url(f"**/workflow/{PARSL_RUN}/")


def _node_position(page, name: str = "source") -> tuple[float, float]:
    """Screen position of the first node of trace `name` in the DAG plot."""
    return page.evaluate(
        """(name) => {
            const gd = document.querySelector('[data-plot="dag"]');
            const trace = gd._fullData.find(t => t.name === name && t.mode === 'markers');
            const xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis;
            let box = gd.getBoundingClientRect();
            window.scrollBy(0, box.top + ya._offset + ya.l2p(trace.y[0]) - 300);
            box = gd.getBoundingClientRect();
            return [box.left + xa._offset + xa.l2p(trace.x[0]),
                    box.top + ya._offset + ya.l2p(trace.y[0])];
        }""",
        name,
    )


def test_hover_dag_node_shows_tooltip_and_click_opens_task(page, server):
    page.goto(server + f"/workflow/{PARSL_RUN}/dag")
    page.locator('[data-plot="dag"] .main-svg').first.wait_for()
    x, y = _node_position(page)
    page.mouse.move(x, y)
    tooltip = page.locator(".hoverlayer .hovertext")
    tooltip.first.wait_for(timeout=5000)
    text = tooltip.first.text_content()
    assert "app: source" in text and "task:" in text and "state:" in text
    # app, task, state, duration: four drawn lines, not one with "<br>" written in it
    assert tooltip.first.locator("tspan.line").count() == 4 and "<br>" not in text
    page.mouse.click(x, y)
    page.wait_for_url("**/task/*")
    assert page.locator("h1", has_text="Task").count() == 1
    assert page.errors == []


def test_task_page_opens_its_dag_neighbourhood(page, server):
    page.goto(server + f"/workflow/{PARSL_RUN}/task/3")
    page.get_by_role("link", name="neighbourhood of this task").click()
    page.wait_for_url("**/dag?view=around&task=3")
    page.locator('[data-plot="dag"] .main-svg').first.wait_for()
    names = page.evaluate(
        """() => document.querySelector('[data-plot="dag"]')._fullData.map(t => t.name)"""
    )
    assert "task 3" in names  # the ringed centre
    tasks = page.evaluate(
        """() => document.querySelector('[data-plot="dag"]')._fullData
              .filter(t => t.mode === 'markers' && t.customdata)
              .flatMap(t => t.customdata)"""
    )
    assert sorted(tasks) == sorted(f"task/{i}" for i in (0, 1, 2, 3, 4))
    assert page.errors == []


def test_live_page_refreshes_itself_and_its_parts(page, taskscope_server):
    page.goto(taskscope_server + "/workflow/run-live/")
    page.wait_for_function(
        "() => [...document.querySelectorAll('[data-part]')].every(e => e.dataset.loaded)",
        timeout=20_000,
    )
    assert page.locator("[data-part='states'] .chip").count() >= 2
    # the page asks for its live sections, then for its parts again, by itself
    with page.expect_request(
        lambda r: "format=json" in r.url and "part=" not in r.url, timeout=15_000
    ):
        pass
    with page.expect_response(lambda r: "part=states" in r.url, timeout=15_000) as part:
        pass
    assert part.value.ok
    page.wait_for_function(
        "() => [...document.querySelectorAll('[data-part]')].every(e => e.dataset.loaded === '1')",
        timeout=10_000,
    )
    assert page.locator("[data-part='states'] .chip").count() >= 2
    assert page.errors == []


def test_an_analysis_still_being_computed_arrives_without_a_reload(
    browser, taskscope_db, monkeypatch
):
    """A big run's first analysis takes longer than the part waits: the page says it is
    being computed, asks again by itself, and draws the analysis when it is ready."""
    from taskscope.visualize import analysis_view

    real = analysis_view.analyze

    def slow_analyze(conn, run_id, **kwargs):
        time.sleep(3.0)
        return real(conn, run_id, **kwargs)

    monkeypatch.setattr(analysis_view, "analyze", slow_analyze)
    servers = serve(taskscope_db)
    base = next(servers)
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    try:
        pg.goto(base + "/workflow/run-failed/")
        part = pg.locator('[data-part="analysis"]')
        part.get_by_text("is being computed").wait_for(timeout=20_000)
        part.get_by_text("Why tasks failed").wait_for(timeout=60_000)
        assert part.is_visible() and "is being computed" not in part.inner_text()
        assert errors == []
    finally:
        context.close()
        next(servers, None)  # stops the server (the code after its yield)
