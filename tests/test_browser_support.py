"""Without Chromium the browser tests skip, saying why; in CI they fail instead."""

from __future__ import annotations

import shutil

import pytest
from _pytest.outcomes import Failed, Skipped
from browser_support import chromium_or_skip


def test_without_chromium_the_browser_tests_skip_with_the_reason(monkeypatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.delenv("TASKSCOPE_REQUIRE_BROWSER", raising=False)
    with pytest.raises(Skipped) as info:
        chromium_or_skip()
    assert "Chromium is not installed" in str(info.value) and "make chromium" in str(info.value)


def test_ci_requires_the_browser(monkeypatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.setenv("TASKSCOPE_REQUIRE_BROWSER", "1")
    with pytest.raises(Failed) as info:
        chromium_or_skip()
    assert "required here" in str(info.value)


def test_a_chromium_on_path_is_used(monkeypatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: f"/opt/bin/{name}")
    assert chromium_or_skip() == "/opt/bin/chromium"
