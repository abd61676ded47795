"""The run-over-time views and the all-tasks DAG on a large run, drawn in headless Chromium:
what is drawn is read back from Plotly's own figure state and the SVG."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from browser_support import chromium_or_skip
from test_browser import ARGS, serve

from taskscope.store.synthetic import SyntheticRun, create_database

pytestmark = pytest.mark.browser
playwright_api = pytest.importorskip("playwright.sync_api")

RUN = "big-run"
TASKS = 20_000
WORKERS, HOSTS = 4, 2


@pytest.fixture(scope="module")
def big_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("big") / "monitoring.db"
    create_database(
        path,
        [
            SyntheticRun(
                RUN,
                tasks=TASKS,
                workers=WORKERS,
                hosts=HOSTS,
                task_seconds=0.5,
                samples_per_try=1,
                seed=3,
            )
        ],
    )
    return path


@pytest.fixture(scope="module")
def big_server(big_db: Path):
    yield from serve(big_db)


@pytest.fixture(scope="module")
def browser():
    chromium = chromium_or_skip()
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium, args=ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    pg = context.new_page()
    pg.errors = []
    pg.on("pageerror", lambda e: pg.errors.append(str(e)))
    pg.on("console", lambda m: pg.errors.append(m.text) if m.type == "error" else None)
    yield pg
    context.close()


def drawn(page, name: str) -> dict:
    """What Plotly drew for figure `name`: per trace its name, points and drawn marks."""
    page.locator(f'[data-plot="{name}"] .main-svg').first.wait_for(timeout=30_000)
    return page.evaluate(
        """(name) => {
            const gd = document.querySelector(`[data-plot="${name}"]`);
            const traces = [...gd.querySelectorAll('.trace')];
            return {
              traces: gd._fullData.map(t => ({name: t.name, n: (t.x || []).length,
                                              y: t.y, customdata: t.customdata})),
              marks: gd.querySelectorAll('.point, .scatterlayer .js-fill').length,
              lanes: gd._fullLayout.yaxis._categories || [],
              ticks: [...gd.querySelectorAll('.yaxislayer-above .ytick text')]
                .map(e => e.textContent),
            };
        }""",
        name,
    )


def truth(db: Path, sql: str):
    conn = sqlite3.connect(db)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def test_task_stream_whole_run_is_aggregated_per_worker(page, big_server, big_db):
    page.goto(f"{big_server}/workflow/{RUN}/stream")
    figure = drawn(page, "stream")
    workers = {w for (w,) in truth(big_db, "SELECT DISTINCT worker FROM taskscope_try_run")}
    assert set(figure["lanes"]) == workers and len(workers) >= WORKERS * HOSTS
    assert figure["marks"] > len(workers)  # bars drawn on every lane
    assert sum(t["n"] for t in figure["traces"]) < 20_000  # not one bar per try
    assert "occupancy by app" in page.content()
    assert page.errors == []


def test_task_stream_window_draws_each_try_hover_and_click(page, big_server, big_db):
    page.goto(f"{big_server}/workflow/{RUN}/stream?from=100&to=104")
    figure = drawn(page, "stream")
    tries = sum(t["n"] for t in figure["traces"])
    (expected,) = truth(
        big_db,
        (
            "SELECT COUNT(*) FROM taskscope_try_run r, workflow w WHERE r.run_id = w.run_id AND "
            "r.time_running <= (julianday(w.time_began) - 2440587.5) * 86400 + 104 AND "
            "r.time_ended >= (julianday(w.time_began) - 2440587.5) * 86400 + 100"
        ),
    )[0]
    assert abs(tries - expected) <= 2  # julianday's rounding at the window's edges
    assert figure["marks"] >= tries > 0
    x, y = page.evaluate("""() => {
        // the middle of the widest bar that lies wholly inside the window
        const gd = document.querySelector('[data-plot="stream"]');
        const xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis;
        const [lo, hi] = xa.range;
        let best = null;
        gd._fullData.forEach(t => t.base.forEach((b, i) => {
            if (b >= lo && b + t.x[i] <= hi && (!best || t.x[i] > best.w))
                best = {mid: b + t.x[i] / 2, lane: t.y[i], w: t.x[i]};
        }));
        const box = gd.getBoundingClientRect();
        return [box.left + xa._offset + xa.l2p(best.mid),
                box.top + ya._offset + ya.l2p(ya.d2l(best.lane))];
    }""")
    page.mouse.move(x, y)  # over Plotly's drag layer, as a user's mouse is
    tooltip = page.locator(".hoverlayer .hovertext").first
    tooltip.wait_for(timeout=10_000)
    assert "task" in tooltip.text_content() and "try" in tooltip.text_content()
    # task and try, worker, time: three drawn lines, not one with "<br>" written in it
    assert tooltip.locator("tspan.line").count() == 3 and "<br>" not in tooltip.text_content()
    page.mouse.click(x, y)
    page.wait_for_url("**/task/*", timeout=15_000)
    assert page.errors == []


def test_timeline_shows_states_over_the_run_and_a_window_gantt(page, big_server, big_db):
    page.goto(f"{big_server}/workflow/{RUN}/")
    figure = drawn(page, "timeline")
    bands = {t["name"].split(" ")[0]: t["y"] for t in figure["traces"]}
    (done,) = truth(
        big_db,
        "SELECT COUNT(*) FROM taskscope_task_state WHERE state IN ('exec_done', 'memo_done')",
    )[0]
    assert bands["done"][-1] == done  # every finished task, by the end of the run
    (workers,) = truth(big_db, "SELECT COUNT(DISTINCT worker) FROM taskscope_try_run")[0]
    assert 0 < max(bands["running"]) <= workers
    assert figure["marks"] >= 6
    page.goto(f"{big_server}/workflow/{RUN}/?from=200&to=201")
    gantt = drawn(page, "window_gantt")
    labels = [t for t in gantt["ticks"] if t.strip()]
    assert 0 < len(labels) <= 60 and all(label.split(" ")[0].isdigit() for label in labels)
    assert page.errors == []


def test_all_tasks_dag_draws_two_thousand_nodes(page, big_server):
    page.goto(f"{big_server}/workflow/{RUN}/dag?view=tasks")
    figure = drawn(page, "dag")
    nodes = sum(len(t["customdata"] or []) for t in figure["traces"] if t["customdata"])
    assert nodes == 2000
    assert figure["marks"] >= 2000  # each node is a drawn marker, not one dot
    page.goto(f"{big_server}/workflow/{RUN}/dag")  # the default at this size: apps
    apps = drawn(page, "dag")
    assert apps["marks"] >= 4
    assert page.errors == []
