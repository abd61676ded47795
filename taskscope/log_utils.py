"""Logging helpers at Parsl's path (``parsl.log_utils``): ``set_stream_logger``,
``set_file_logger`` and ``DEFAULT_FORMAT``.

Each returns a callable that removes the handler it added, as Parsl's do. The logger name
defaults to ``taskscope``, the logger every taskscope module logs under.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable

DEFAULT_FORMAT = (
    "%(created)f %(asctime)s %(processName)s-%(process)d "
    "%(threadName)s-%(thread)d %(name)s:%(lineno)d %(funcName)s %(levelname)s: "
    "%(message)s"
)
_STREAM_FORMAT = "%(asctime)s %(name)s:%(lineno)d [%(levelname)s]  %(message)s"


def _attach(name: str, level: int, handler: logging.Handler, fmt: str) -> Callable[[], None]:
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, got {type(name).__name__}")
    if isinstance(level, bool) or not isinstance(level, int):
        raise TypeError(f"level must be an int logging level, got {type(level).__name__}")
    handler.setLevel(level)
    handler.setFormatter(logging.Formatter(fmt, datefmt="%Y-%m-%d %H:%M:%S"))
    logger = logging.getLogger(name)
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)

    # Exceptions escaping a future's done-callback are logged here and otherwise lost.
    futures_logger = logging.getLogger("concurrent.futures")
    futures_logger.addHandler(handler)

    def unregister() -> None:
        logger.removeHandler(handler)
        futures_logger.removeHandler(handler)
        handler.close()

    return unregister


def set_stream_logger(
    name: str = "taskscope",
    level: int = logging.DEBUG,
    format_string: str | None = None,
    stream: io.TextIOBase | None = None,
) -> Callable[[], None]:
    """Log ``name`` to ``stream`` (stderr by default) at ``level``."""
    return _attach(name, level, logging.StreamHandler(stream), format_string or _STREAM_FORMAT)


def set_file_logger(
    filename: str,
    name: str = "taskscope",
    level: int = logging.DEBUG,
    format_string: str | None = None,
) -> Callable[[], None]:
    """Log ``name`` to ``filename`` at ``level``."""
    if not isinstance(filename, str):
        raise TypeError(f"filename must be a str, got {type(filename).__name__}")
    return _attach(name, level, logging.FileHandler(filename), format_string or DEFAULT_FORMAT)
