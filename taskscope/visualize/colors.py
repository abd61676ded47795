"""Colours shared by the DAG, the plots and the state chips, so they always agree.

State and run-status colours are part of the state vocabulary (``taskscope.store.states``);
the app palette is the dashboard's own."""

from __future__ import annotations

from taskscope.store.states import (
    RUN_STATUS_COLORS,
    STATE_COLORS,
    UNKNOWN_STATE_COLOR,
    run_status_color,
    state_color,
)

__all__ = [
    "APP_PALETTE",
    "RUN_STATUS_COLORS",
    "STATE_COLORS",
    "UNKNOWN_STATE_COLOR",
    "app_colors",
    "run_status_color",
    "state_color",
]

# Apps get colours from this list in name order; more apps than colours cycle.
APP_PALETTE = (
    "#4e79a7",
    "#f28e2b",
    "#59a14f",
    "#e15759",
    "#76b7b2",
    "#edc948",
    "#b07aa1",
    "#ff9da7",
    "#9c755f",
    "#bab0ac",
    "#1b9e77",
    "#d95f02",
    "#7570b3",
    "#e7298a",
)


# How a run's status reads on the dashboard. "failed" is taskscope's (and the derived Parsl)
# status of a run that ran to its end with some tasks failed: it must not read like a crash,
# which is "aborted" (the script stopped early) or "lost" (the process died).
_FINISHED_WITH_FAILURES_COLOR = "#b8860b"


def run_status_label(status: str, failed_tasks: int | None = None) -> str:
    if status == "failed":
        if failed_tasks:
            return f"completed with {failed_tasks:,} failed task{'s' if failed_tasks != 1 else ''}"
        return "completed with failed tasks"
    if status == "aborted":
        return "aborted (stopped early)"
    return status


def run_status_chip_color(status: str) -> str:
    if status == "failed":
        return _FINISHED_WITH_FAILURES_COLOR
    if status == "aborted":
        return STATE_COLORS["failed"]
    return run_status_color(status)


def app_colors(apps: list[str]) -> dict[str, str]:
    return {app: APP_PALETTE[i % len(APP_PALETTE)] for i, app in enumerate(sorted(set(apps)))}
