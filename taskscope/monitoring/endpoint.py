"""Parse ``logging_endpoint`` (``sqlite:///relative.db`` or ``sqlite:////abs/path.db``)."""

from __future__ import annotations

import os
from pathlib import Path

SQLITE_PREFIX = "sqlite:///"
DEFAULT_ENDPOINT = "sqlite:///monitoring.db"


def database_path(endpoint: str | None, cwd: str | None = None) -> Path:
    """The absolute database path named by ``endpoint``; ValueError if it is not usable."""
    if endpoint is None:
        endpoint = DEFAULT_ENDPOINT
    if not isinstance(endpoint, str):
        raise TypeError(
            f"logging_endpoint must be a string like 'sqlite:///monitoring.db', "
            f"not {type(endpoint).__name__}"
        )
    if not endpoint.startswith(SQLITE_PREFIX):
        scheme = endpoint.split("://", 1)[0] if "://" in endpoint else endpoint
        raise ValueError(
            f"logging_endpoint {endpoint!r} is not supported: taskscope writes SQLite only; "
            f"use 'sqlite:///relative.db' or 'sqlite:////absolute/path.db' (got {scheme!r})"
        )
    if "\0" in endpoint:  # no file name holds one; SQLite would fail later, in the writer
        raise ValueError(
            f"logging_endpoint {endpoint!r} contains a NUL byte; no file can have that name"
        )
    rest = endpoint[len(SQLITE_PREFIX) :]
    if not rest or rest == ":memory:" or rest.startswith("?"):
        raise ValueError(
            f"logging_endpoint {endpoint!r} names no file; monitoring needs a database file"
        )
    path = Path(rest)
    if not path.is_absolute():
        path = Path(cwd or os.getcwd()) / path
    return path
