"""A cap on any one value a page shows, so that database content cannot make a page huge.

A task's traceback, an exception message or an app name is whatever the database holds: a
20 MB traceback made a 77 MB task page (0.6 s to serve, and more than a browser will lay
out). Every value a template writes goes through `clip` (Jinja's `finalize`): text longer
than MAX_SHOWN characters is cut, saying how much was left out. Markup the dashboard builds
itself (figure JSON through `tojson`, already-escaped HTML) passes untouched.
"""

from __future__ import annotations

from typing import Any

MAX_SHOWN = 64 * 1024


def clip(value: Any) -> Any:
    if type(value) is not str or len(value) <= MAX_SHOWN:  # Markup is a str subclass: kept
        return value
    left_out = len(value) - MAX_SHOWN
    return f"{value[:MAX_SHOWN]} … [{left_out:,} more characters not shown]"
