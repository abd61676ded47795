"""``LogConfig``: a policy that sets up logging in a process and can undo it.

``oneshot_initialize_logging`` counts references per configuration (by its ``uuid``, which
survives pickling), so several components of one process sharing a configuration set it
up once and tear it down when the last one is done, as in Parsl.
"""

from __future__ import annotations

import abc
import logging
import pathlib
import threading
import uuid
from collections.abc import Callable

logger = logging.getLogger(__name__)

# Parsl's record attribute prefixes, both kept in structured logs (see JSONLogging).
RECORD_PREFIXES = ("taskscope.", "parsl.")


class LogConfig(abc.ABC):
    def __init__(self) -> None:
        self.uuid = uuid.uuid4()

    @abc.abstractmethod
    def initialize_logging(self, *, log_dir: pathlib.Path, log_name: str) -> Callable[[], None]:
        """Set up logging in this process; return a callable that undoes it."""


class _Reference:
    def __init__(self, uninit: Callable[[], None]) -> None:
        self.uninit = uninit
        self.count = 1

    @property
    def uninit_callback(self) -> Callable[[], None]:  # Parsl's attribute name
        return self.uninit


_initialized_log_contexts: dict[uuid.UUID, _Reference] = {}
_lock = threading.Lock()


def oneshot_initialize_logging(
    *, log_config: LogConfig, log_dir: pathlib.Path, log_name: str
) -> None:
    """Initialise ``log_config`` unless it already is in this process; count the use."""
    with _lock:
        ref = _initialized_log_contexts.get(log_config.uuid)
        if ref is not None:
            ref.count += 1
            return
        uninit = log_config.initialize_logging(log_dir=log_dir, log_name=log_name)
        if not callable(uninit):
            raise TypeError(
                f"{type(log_config).__name__}.initialize_logging must return a callable "
                f"that undoes it, got {type(uninit).__name__}"
            )
        _initialized_log_contexts[log_config.uuid] = _Reference(uninit)


def oneshot_uninitialize_logging(*, log_config: LogConfig) -> None:
    """Drop one use of ``log_config``; the last one undoes its logging set-up."""
    with _lock:
        ref = _initialized_log_contexts.get(log_config.uuid)
        if ref is None:
            raise ValueError(f"{log_config!r} is not initialised (uninitialised too many times?)")
        ref.count -= 1
        if ref.count < 1:
            del _initialized_log_contexts[log_config.uuid]
            ref.uninit()


def lower_level(target: logging.Logger, level: int) -> Callable[[], None]:
    """Let ``level`` through ``target`` without hiding what it already lets through;
    returns a callable that puts the previous level back (so a DEBUG configuration does
    not leave the process logging at DEBUG after its run)."""
    previous = target.level
    target.setLevel(level if previous == logging.NOTSET else min(previous, level))
    return lambda: target.setLevel(previous)
