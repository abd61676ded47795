"""The token flow in Chromium: the printed address opens the dashboard, the token leaves the
address bar, and every later request (pages, deferred parts, live refreshes) gets in."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser
pytest.importorskip("playwright.sync_api")

from test_browser import browser, free_port  # noqa: E402,F401 - the shared Chromium fixture

TOKEN = "browser-test-token-0123456789abcdef"


@pytest.fixture(scope="module")
def token_server(taskscope_db: Path):
    import uvicorn

    from taskscope.visualize.app import create_app

    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(taskscope_db, token=TOKEN), host="127.0.0.1", port=port, log_level="error"
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


def test_printed_address_opens_a_live_page_and_the_token_leaves_the_url(browser, token_server):  # noqa: F811
    context = browser.new_context()
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        page.goto(f"{token_server}/workflow/run-live/?token={TOKEN}")
        assert page.url == f"{token_server}/workflow/run-live/"
        page.wait_for_function(
            "() => [...document.querySelectorAll('[data-part]')].every(e => e.dataset.loaded)",
            timeout=20_000,
        )
        assert page.locator('[data-part][data-loaded="error"]').count() == 0
        with page.expect_response(lambda r: "format=json" in r.url, timeout=20_000) as refresh:
            pass  # the live page refreshes itself with the cookie alone
        assert refresh.value.status == 200
        cookies = context.cookies()
        assert [c["httpOnly"] for c in cookies] == [True]
        assert page.evaluate("document.cookie") == ""  # out of reach of page scripts
        assert errors == []
    finally:
        context.close()
    stranger = browser.new_context()
    try:
        response = stranger.new_page().goto(f"{token_server}/workflow/run-live/")
        assert response.status == 401
    finally:
        stranger.close()
