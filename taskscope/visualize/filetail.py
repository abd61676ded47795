"""The last lines of a task's stdout/stderr file for the task page, read safely.

The reading itself (regular files outside /proc, /sys and /dev only, no blocking, off the
request thread under a time limit) is `taskscope.store.output_tail`; this module turns it
into what the page shows: the lines, or the path with the reason its contents are not shown.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from taskscope.store.output_tail import READ_TIMEOUT_S, read_tails

TAIL_BYTES = 16 * 1024
TAIL_LINES = 40
__all__ = ["READ_TIMEOUT_S", "TAIL_BYTES", "TAIL_LINES", "FileTail", "tail", "tails"]


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


def tails(
    paths: Sequence[str | None],
    base: Path | None = None,
    *,
    allowed: bool = True,
    timeout_s: float = READ_TIMEOUT_S,
) -> list[FileTail | None]:
    """The ends of the files named in `paths` (relative ones against `base`), read in
    parallel under one deadline; None for an empty name. When `allowed` is False (a dashboard
    reachable from the network), only the paths, never the contents."""
    named = [p for p in paths if p]
    if not allowed:
        read = {p: FileTail(p, False, [], WITHHELD_NOTE) for p in named}
    else:
        read = {}
        for path_text, got in zip(
            named,
            read_tails(
                named, base, max_bytes=TAIL_BYTES, max_lines=TAIL_LINES, timeout_s=timeout_s
            ),
            strict=True,
        ):
            if got.lines is None:
                read[path_text] = FileTail(path_text, False, [], got.reason)
            else:
                note = (
                    f"last {len(got.lines)} lines of {got.size:,} bytes"
                    if got.size
                    else "empty file"
                )
                read[path_text] = FileTail(path_text, True, got.lines, note)
    return [read[p] if p else None for p in paths]


def tail(
    path_text: str | None, base: Path | None = None, *, allowed: bool = True
) -> FileTail | None:
    """The end of one file; see `tails`."""
    return tails([path_text], base, allowed=allowed)[0]
