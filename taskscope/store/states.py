"""The task-state vocabulary, in one place: the kernel, the writer, the queries and the pages use
these names, sets, order and colours.

The names are Parsl's (the ``status.task_status_name`` and ``task.task_status_name`` columns
hold them, and Parsl's own databases use the same ones). The kernel's numbered enum
(``taskscope.dataflow.states.States``, Parsl's numbers) is built from ``LIFECYCLE_ORDER``.
This module lives in the store because the store is the contract between the capture side and
the views; it imports nothing.
"""

from __future__ import annotations

# Every state a DataFlowKernel (Parsl's or taskscope's) records, in lifecycle order: the order
# legends, filters and per-state tables list them in.
LIFECYCLE_ORDER: tuple[str, ...] = (
    "unsched",
    "pending",
    "launched",
    "running",
    "running_ended",
    "joining",
    "fail_retryable",
    "exec_done",
    "memo_done",
    "failed",
    "dep_fail",
)

# States after which a task never changes again.
FINAL_STATES: frozenset[str] = frozenset({"exec_done", "memo_done", "failed", "dep_fail"})
# Final states that count as a failed task (a run with any is 'failed'; pages show them red).
FAILED_FINAL_STATES: frozenset[str] = frozenset({"failed", "dep_fail"})
# Final states that count as a task that produced its result.
SUCCEEDED_FINAL_STATES: frozenset[str] = FINAL_STATES - FAILED_FINAL_STATES
# The final states in the order pages list them (successes first).
FINAL_ORDER: tuple[str, ...] = tuple(s for s in LIFECYCLE_ORDER if s in FINAL_STATES)

# workflow.tasks_completed_count / tasks_failed_count mean what they mean in Parsl: tasks that
# ended exec_done / failed; memo_done and dep_fail are final but in neither count.
PARSL_COMPLETED_COUNT_STATES: frozenset[str] = frozenset({"exec_done"})
PARSL_FAILED_COUNT_STATES: frozenset[str] = frozenset({"failed"})

# A run's status as readers report it (``store.runstatus``); 'lost' is a 'running' run whose
# heartbeat stopped.
RUN_STATUSES: tuple[str, ...] = ("running", "completed", "failed", "aborted", "lost")

# Colours shared by the DAG, the plots, the state chips and the exports, so they always agree.
STATE_COLORS: dict[str, str] = {
    "exec_done": "#2e9e44",
    "memo_done": "#7cc47f",
    "failed": "#d62728",
    "dep_fail": "#ff7f0e",
    "fail_retryable": "#e377c2",
    "pending": "#9aa5b1",
    "unsched": "#c7ccd1",
    "launched": "#17becf",
    "running": "#1f77b4",
    "running_ended": "#6baed6",
    "joining": "#9467bd",
}
UNKNOWN_STATE_COLOR = "#555555"

RUN_STATUS_COLORS: dict[str, str] = {
    "completed": STATE_COLORS["exec_done"],
    "failed": STATE_COLORS["failed"],
    "running": STATE_COLORS["running"],
    "aborted": STATE_COLORS["dep_fail"],
    "lost": "#8c564b",
}


def sql_list(states: frozenset[str]) -> str:
    """``states`` as an SQL list for ``IN``, in lifecycle order: ``('exec_done', ...)``."""
    return "(" + ", ".join(f"'{s}'" for s in LIFECYCLE_ORDER if s in states) + ")"


FINAL_STATES_SQL = sql_list(FINAL_STATES)


def is_final(state: str | None) -> bool:
    return state in FINAL_STATES


def is_failed(state: str | None) -> bool:
    return state in FAILED_FINAL_STATES


def state_color(state: str) -> str:
    return STATE_COLORS.get(state, UNKNOWN_STATE_COLOR)


def run_status_color(status: str) -> str:
    return RUN_STATUS_COLORS.get(status, UNKNOWN_STATE_COLOR)
