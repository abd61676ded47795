"""Per-run directories (``runinfo/000``, ``runinfo/001``, ...) and the run's log file."""

from __future__ import annotations

import logging
import os

LOG_FORMAT = "%(asctime)s %(name)s:%(lineno)d %(threadName)s %(levelname)s %(message)s"


def make_run_dir(base: str) -> str:
    """Create and return the next numbered directory under ``base``."""
    try:
        os.makedirs(base, exist_ok=True)
    except OSError as e:
        raise OSError(f"cannot create run_dir {base!r}: {e}") from e
    existing = [int(n) for n in os.listdir(base) if n.isdigit()]
    number = max(existing, default=-1) + 1
    while True:
        path = os.path.join(base, f"{number:03d}")
        try:
            os.mkdir(path)
            return path
        except FileExistsError:  # another run started at the same moment
            number += 1


def attach_run_log(run_dir: str) -> logging.Handler:
    """Log the ``taskscope`` logger at INFO into ``<run_dir>/taskscope.log``."""
    handler = logging.FileHandler(os.path.join(run_dir, "taskscope.log"))
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    handler.setLevel(logging.INFO)
    logger = logging.getLogger("taskscope")
    if logger.level == logging.NOTSET:
        logger.setLevel(logging.INFO)
        handler._taskscope_set_level = True  # type: ignore[attr-defined]
    logger.addHandler(handler)
    return handler


def detach_run_log(handler: logging.Handler) -> None:
    logger = logging.getLogger("taskscope")
    logger.removeHandler(handler)
    if getattr(handler, "_taskscope_set_level", False):
        # Put back the level found, so a later run's (or a LogConfig's) DEBUG is not hidden.
        logger.setLevel(logging.NOTSET)
    handler.close()
