"""The installed taskscope version, for the dashboard's footer, `--version` and the exports.

At the package root, below the read side and the workflow side alike, so that an exporter
or the CLI needs neither the dashboard nor the kernel to name the version.
"""

from __future__ import annotations


def taskscope_version() -> str:
    """The installed distribution's version, or "unknown" where it is not installed (a
    source checkout on PYTHONPATH)."""
    # Imported here, as the CLI did: `taskscope --help` need not load importlib.metadata.
    from importlib import metadata

    try:
        return metadata.version("taskscope")
    except metadata.PackageNotFoundError:
        return "unknown"
