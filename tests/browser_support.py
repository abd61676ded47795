"""Where the browser tests find Chromium, and why they skip when they cannot.

``make chromium`` installs it with apt, which needs root or sudo; on machines without either
(HPC login nodes, say) ``make test`` runs everything else and these tests skip, saying so. CI
sets ``TASKSCOPE_REQUIRE_BROWSER=1``: there a missing browser is a failure, not a skip.
"""

from __future__ import annotations

import os
import shutil

import pytest

CANDIDATES = ("chromium", "chromium-browser", "google-chrome")
WHY = (
    "Chromium is not installed: `make chromium` installs it with apt (needs root or sudo), "
    "or put a chromium on PATH; the browser tests are skipped"
)


def chromium_or_skip() -> str:
    """The path of a Chromium executable; skips the test (fails it in CI) when there is none."""
    for name in CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    if os.environ.get("TASKSCOPE_REQUIRE_BROWSER") == "1":
        pytest.fail(WHY.replace("are skipped", "are required here (TASKSCOPE_REQUIRE_BROWSER=1)"))
    pytest.skip(WHY)
