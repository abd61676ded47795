"""The installed taskscope version, for the page footer and `--version`."""

from __future__ import annotations

from importlib import metadata


def taskscope_version() -> str:
    try:
        return metadata.version("taskscope")
    except metadata.PackageNotFoundError:
        return "unknown"
