"""Task states, with Parsl's names and numeric values (``parsl.dataflow.states.States``).

The numbers matter: the ``status.task_status_name`` column holds the names, but code ported
from Parsl compares ``States`` members, and Parsl's dashboard groups by these names.
"""

from __future__ import annotations

from enum import IntEnum

from taskscope.store import states as vocabulary


class States(IntEnum):
    unsched = -1
    pending = 0
    running = 2
    exec_done = 3
    failed = 4
    dep_fail = 5
    launched = 7
    fail_retryable = 8
    memo_done = 9
    joining = 10
    running_ended = 11

    def __str__(self) -> str:  # Parsl's form, e.g. in "Tasks in state States.exec_done: 1"
        return f"{type(self).__name__}.{self.name}"


# The sets are the store's vocabulary (``taskscope.store.states``), as enum members.
FINAL_STATES = frozenset(States[name] for name in vocabulary.FINAL_STATES)
FINAL_FAILURE_STATES = frozenset(States[name] for name in vocabulary.FAILED_FINAL_STATES)
