"""``JobState`` and ``JobStatus``: what a provider reports about one block (batch job).

Names and numbers are Parsl's (``parsl.jobs.states``): the ``block.status`` column of the
monitoring database holds these names, and code ported from Parsl compares the members.
"""

from __future__ import annotations

import logging
import os
from enum import IntEnum

logger = logging.getLogger(__name__)


class JobState(IntEnum):
    UNKNOWN = 0
    PENDING = 1
    RUNNING = 2
    CANCELLED = 3
    COMPLETED = 4
    FAILED = 5
    # A pilot job ending at its walltime is expected, not a failure.
    TIMEOUT = 6
    HELD = 7
    # Ended without its workers ever connecting back.
    MISSING = 8
    # Deliberately scaled in.
    SCALED_IN = 9

    def __str__(self) -> str:
        return f"{type(self).__name__}.{self.name}"


TERMINAL_STATES = [
    JobState.CANCELLED,
    JobState.COMPLETED,
    JobState.FAILED,
    JobState.TIMEOUT,
    JobState.MISSING,
    JobState.SCALED_IN,
]


class JobStatus:
    """A block's state with an optional message, exit code and job output files."""

    SUMMARY_TRUNCATION_THRESHOLD = 2048

    def __init__(
        self,
        state: JobState,
        message: str | None = None,
        exit_code: int | None = None,
        stdout_path: str | None = None,
        stderr_path: str | None = None,
    ):
        if not isinstance(state, JobState):
            raise TypeError(f"JobStatus(state=...) must be a JobState, got {state!r}")
        self.state = state
        self.message = message
        self.exit_code = exit_code
        self.stdout_path = stdout_path
        self.stderr_path = stderr_path

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL_STATES

    @property
    def status_name(self) -> str:
        return self.state.name

    @property
    def stdout(self) -> str | None:
        return self._read(self.stdout_path)

    @property
    def stderr(self) -> str | None:
        return self._read(self.stderr_path)

    @property
    def stdout_summary(self) -> str | None:
        return self._summary(self.stdout_path)

    @property
    def stderr_summary(self) -> str | None:
        return self._summary(self.stderr_path)

    @staticmethod
    def _read(path: str | None) -> str | None:
        if path is None:
            return None
        try:
            with open(path) as f:
                return f.read()
        except OSError:
            logger.exception("cannot read job output %s", path)
            return None

    @classmethod
    def _summary(cls, path: str | None) -> str | None:
        """The file, or its head and tail around ``...`` when it is long (as in Parsl)."""
        if not path:
            return None
        try:
            with open(path, "rb") as f:  # bytes: the tail may start inside a character
                size = f.seek(0, os.SEEK_END)
                f.seek(0)
                if size <= cls.SUMMARY_TRUNCATION_THRESHOLD:
                    return f.read().decode(errors="replace")
                half = cls.SUMMARY_TRUNCATION_THRESHOLD // 2
                head = f.read(half)
                f.seek(size - half)
                tail = f.read(half)
                return (head + b"\n...\n" + tail).decode(errors="replace")
        except FileNotFoundError:  # a job that printed nothing may leave no file
            return None

    def __repr__(self) -> str:
        extra = f"state={self.state}" + (f" message={self.message}" if self.message else "")
        name = f"{type(self).__module__}.{type(self).__qualname__}"
        return f"<{name} object at {hex(id(self))}, {extra}>"

    def __str__(self) -> str:
        return f"{self.state} ({self.message})" if self.message is not None else f"{self.state}"
