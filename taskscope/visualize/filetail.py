"""The last lines of a task's stdout/stderr file, read without loading a large file."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

TAIL_BYTES = 16 * 1024
TAIL_LINES = 40


@dataclass(frozen=True)
class FileTail:
    path: str
    readable: bool
    lines: list[str]
    note: str


WITHHELD_NOTE = (
    "file contents are not shown: the dashboard listens on a network address; restart it "
    "with --show-files to show the last lines of task output files"
)


def tail(
    path_text: str | None, base: Path | None = None, *, allowed: bool = True
) -> FileTail | None:
    """The end of the file named `path_text` (relative paths against `base`); when `allowed`
    is False (a dashboard reachable from the network), only the path, never the contents."""
    if not path_text:
        return None
    if not allowed:
        return FileTail(path_text, False, [], WITHHELD_NOTE)
    path = Path(path_text).expanduser()
    if not path.is_absolute() and base is not None:
        path = base / path
    try:
        with open(path, "rb") as handle:
            handle.seek(0, 2)
            size = handle.tell()
            handle.seek(max(0, size - TAIL_BYTES))
            data = handle.read(TAIL_BYTES)
    except (OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        return FileTail(path_text, False, [], f"not readable from the dashboard's host: {reason}")
    lines = data.decode("utf-8", errors="replace").splitlines()
    if size > TAIL_BYTES and lines:
        lines = lines[1:]  # the first line is probably cut
    shown = lines[-TAIL_LINES:]
    note = f"last {len(shown)} lines of {size:,} bytes" if size else "empty file"
    return FileTail(path_text, True, shown, note)
