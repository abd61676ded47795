"""Fetching a dashboard view as a browser waits for it: the analysis of a run (its part on
the workflow page, and the analysis page), and any deferred part whose read takes long
(visualize/slow_parts.py), answer at once while a first computation goes on in the
background, saying it "is being computed"; the browser asks again until the figures are
there."""

from __future__ import annotations

import time
from typing import Any

PENDING = "is being computed"


def ready(client: Any, url: str, timeout: float = 120.0) -> Any:
    """The response to ``url`` once it no longer says that it is being computed."""
    deadline = time.monotonic() + timeout
    while True:
        response = client.get(url)
        if response.status_code != 200 or PENDING not in response.text:
            return response
        assert time.monotonic() < deadline, f"{url} was still being computed after {timeout} s"
        time.sleep(0.1)


def wait_until(predicate: Any, timeout: float = 5.0) -> bool:
    """Whether `predicate()` came true within `timeout` seconds (asked every 10 ms)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return bool(predicate())
