"""Colours shared by the DAG, the plots and the state chips, so they always agree."""

from __future__ import annotations

STATE_COLORS = {
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

RUN_STATUS_COLORS = {
    "completed": STATE_COLORS["exec_done"],
    "failed": STATE_COLORS["failed"],
    "running": STATE_COLORS["running"],
    "aborted": STATE_COLORS["dep_fail"],
    "lost": "#8c564b",
}

# Apps get colours from this list in name order; more apps than colours cycle.
APP_PALETTE = (
    "#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1",
    "#ff9da7", "#9c755f", "#bab0ac", "#1b9e77", "#d95f02", "#7570b3", "#e7298a",
)


def state_color(state: str) -> str:
    return STATE_COLORS.get(state, UNKNOWN_STATE_COLOR)


def app_colors(apps: list[str]) -> dict[str, str]:
    return {app: APP_PALETTE[i % len(APP_PALETTE)] for i, app in enumerate(sorted(set(apps)))}
