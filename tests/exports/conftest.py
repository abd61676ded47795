"""Fixtures for the export tests: headless Chromium with the network off."""

from __future__ import annotations

from pathlib import Path

import pytest
from browser_support import chromium_or_skip

ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def offline_browser():
    playwright_api = pytest.importorskip("playwright.sync_api")
    chromium = chromium_or_skip()
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=ARGS)
        yield browser
        browser.close()


@pytest.fixture
def offline_page(offline_browser):
    """A page in a context with the network off, recording console errors, page errors and
    every request (a self-contained file makes exactly one: itself)."""
    context = offline_browser.new_context(viewport={"width": 1300, "height": 900}, offline=True)
    page = context.new_page()
    page.errors = []
    page.requests = []
    page.on("console", lambda m: page.errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: page.errors.append(str(e)))
    page.on("request", lambda r: page.requests.append(r.url))
    yield page
    context.close()


HTEX_WORKFLOW = Path(__file__).with_name("htex_workflow.py")


@pytest.fixture(scope="session")
def htex_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A database written by taskscope's monitoring of a real run on two HTEX workers."""
    import subprocess
    import sys

    folder = tmp_path_factory.mktemp("exports-htex")
    db = folder / "monitoring.db"
    result = subprocess.run(
        [sys.executable, str(HTEX_WORKFLOW), str(db), str(folder / "runinfo")],
        check=False,
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return db
