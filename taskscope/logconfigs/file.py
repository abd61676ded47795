"""``FileLogging``: the ``taskscope`` logger into ``<log_dir>/<log_name>.log``."""

from __future__ import annotations

import logging
import pathlib
from collections.abc import Callable

from taskscope.log_utils import DEFAULT_FORMAT
from taskscope.logconfigs.base import LogConfig, lower_level


class FileLogging(LogConfig):
    def __init__(self, *, format_string: str = DEFAULT_FORMAT, level: int = logging.DEBUG):
        super().__init__()
        self.format_string = format_string
        self.level = level

    def initialize_logging(self, *, log_dir: pathlib.Path, log_name: str) -> Callable[[], None]:
        log_dir = pathlib.Path(log_dir)
        log_dir.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(log_dir / f"{log_name}.log")
        handler.setLevel(self.level)
        handler.setFormatter(logging.Formatter(self.format_string, datefmt="%Y-%m-%d %H:%M:%S"))
        # concurrent.futures: exceptions escaping done-callbacks are logged there, else lost.
        targets = [logging.getLogger("taskscope"), logging.getLogger("concurrent.futures")]
        restore_levels = []
        for target in targets:
            restore_levels.append(lower_level(target, self.level))
            target.addHandler(handler)

        def unregister() -> None:
            for target, restore in zip(targets, restore_levels, strict=True):
                target.removeHandler(handler)
                restore()
            handler.close()

        return unregister

    def __repr__(self) -> str:
        return f"FileLogging(format_string={self.format_string!r}, level={self.level!r})"
