"""``NoopLogging``: sets up no logging at all (for benchmarks, or a process whose logging
is configured elsewhere)."""

from __future__ import annotations

import pathlib
from collections.abc import Callable

from taskscope.logconfigs.base import LogConfig


class NoopLogging(LogConfig):
    def initialize_logging(self, *, log_dir: pathlib.Path, log_name: str) -> Callable[[], None]:
        return lambda: None

    def __repr__(self) -> str:
        return "NoopLogging()"
