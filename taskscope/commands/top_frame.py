"""What one frame of `taskscope top` shows, read from the database, and how it is drawn.

`collect` reads a `TopFrame` (plain data, so tests check figures without a terminal);
`render` turns it into rich renderables. The slow analyses (failure groups, stragglers, the
forecast) are passed in by the caller, which refreshes them less often than the counts.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass, field

from taskscope.store import query
from taskscope.store.analysis.failures import FailureGroup
from taskscope.store.analysis.forecast import Forecast
from taskscope.store.analysis.stragglers import Straggler
from taskscope.store.live_metrics import finish_rate
from taskscope.store.records import RunRow
from taskscope.store.states import (
    FAILED_FINAL_STATES,
    FINAL_STATES,
    LIFECYCLE_ORDER,
    SUCCEEDED_FINAL_STATES,
)
from taskscope.store.task_state import app_state_counts, state_source
from taskscope.store.timestamps import age_seconds, convention_label

BUSIEST_APPS = 8
FAILURE_GROUPS = 5
STRAGGLERS = 5
RATE_WINDOW_S = 60.0


@dataclass
class SlowParts:
    """The analyses that read a whole run: refreshed every few frames."""

    failure_groups: list[FailureGroup] = field(default_factory=list)
    stragglers: list[Straggler] = field(default_factory=list)
    forecast: Forecast | None = None
    read_at: float = 0.0  # time.monotonic() when read
    ready: bool = True  # False until the first read has finished (a live view starts at once)


@dataclass
class TopFrame:
    run: RunRow
    states: dict[str, int]
    apps: list[tuple[str, dict[str, int]]]  # busiest first
    rate_per_s: float | None
    tries: int
    workers: int | None
    last_event: str | None
    last_event_age_s: float | None
    heartbeat_age_s: float | None
    read_at: str
    slow: SlowParts


def collect(conn: sqlite3.Connection, run_id: str, slow: SlowParts) -> TopFrame | None:
    run = query.get_run(conn, run_id, with_counts=False)
    if run is None:
        return None
    info = query.describe_database(conn)
    states = query.state_counts(conn, run_id, run.task_count)
    apps: list[tuple[str, dict[str, int]]] = []
    if info.has("task") and info.has("status"):
        by_app = app_state_counts(conn, state_source(conn, info, run_id, run.task_count))
        apps = sorted(
            by_app.items(),
            key=lambda item: (-item[1].get("running", 0), -sum(item[1].values()), item[0]),
        )[:BUSIEST_APPS]
    tries = 0
    if info.has("try"):
        tries = conn.execute("SELECT COUNT(*) FROM try WHERE run_id = ?", (run_id,)).fetchone()[0]
    last_event = None
    if info.has("status"):
        last_event = conn.execute(
            "SELECT MAX(timestamp) FROM status WHERE run_id = ?", (run_id,)
        ).fetchone()[0]
    return TopFrame(
        run=run,
        states=states,
        apps=apps,
        rate_per_s=finish_rate(conn, run, RATE_WINDOW_S),
        tries=tries,
        workers=query.capacity(conn, run_id).workers,
        last_event=last_event,
        last_event_age_s=age_seconds(last_event, run.timestamp_convention),
        heartbeat_age_s=age_seconds(run.last_heartbeat, run.timestamp_convention)
        if run.last_heartbeat
        else None,
        read_at=time.strftime("%H:%M:%S"),
        slow=slow,
    )


def read_slow_parts(conn: sqlite3.Connection, run_id: str) -> SlowParts:
    from taskscope.store.analysis.context import run_context
    from taskscope.store.analysis.failures import failure_groups
    from taskscope.store.analysis.forecast import forecast
    from taskscope.store.analysis.stragglers import stragglers

    ctx = run_context(conn, run_id)
    groups = failure_groups(ctx, read_files=False, with_history=False)
    return SlowParts(
        failure_groups=groups[:FAILURE_GROUPS],
        stragglers=stragglers(ctx)[:STRAGGLERS],
        forecast=forecast(ctx) if ctx.live else None,
        read_at=time.monotonic(),
    )


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    seconds = max(0.0, seconds)
    if seconds < 120:
        return f"{seconds:.0f} s ago"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min ago"
    return f"{seconds / 3600:.1f} h ago"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


STATE_STYLES = {
    "exec_done": "green",
    "memo_done": "green",
    "failed": "bold red",
    "dep_fail": "red",
    "running": "cyan",
    "launched": "blue",
    "pending": "white",
    "fail_retryable": "magenta",
    "running_ended": "cyan",
    "joining": "blue",
    "unsched": "dim",
}


def render(frame: TopFrame):
    from rich.console import Group
    from rich.panel import Panel
    from rich.table import Table
    from rich.text import Text

    run = frame.run
    done = sum(frame.states.get(s, 0) for s in FINAL_STATES)
    header = Text()
    header.append(f"{run.workflow_name or 'workflow'} ", style="bold")
    header.append(f"run {run.run_id}  ", style="dim")
    header.append(
        run.status,
        style={
            "running": "bold cyan",
            "completed": "bold green",
            "failed": "bold red",
            "lost": "bold yellow",
        }.get(run.status, "bold"),
    )
    header.append(f"   {done:,} of {run.task_count:,} tasks final, {frame.tries:,} tries")
    if frame.rate_per_s is not None:
        header.append(f"   {frame.rate_per_s:.2f} tasks/s (last {RATE_WINDOW_S:.0f} s)")
    header.append(f"   runtime {_duration(run.duration_s)}")

    states = Table(title="Tasks by state", title_justify="left", expand=False)
    states.add_column("state")
    states.add_column("tasks", justify="right")
    for state in [s for s in LIFECYCLE_ORDER if frame.states.get(s)] + sorted(
        s for s in frame.states if s not in LIFECYCLE_ORDER
    ):
        states.add_row(Text(state, style=STATE_STYLES.get(state, "")), f"{frame.states[state]:,}")
    if frame.workers:
        busy = frame.states.get("running", 0)
        states.add_row(
            "workers busy",
            f"{busy:,} of {frame.workers:,}"
            if run.status == "running"
            else f"— of {frame.workers:,}",
        )

    apps = Table(title="Busiest apps", title_justify="left")
    for column in ("app", "running", "pending", "done", "failed", "tasks"):
        apps.add_column(column, justify="left" if column == "app" else "right")
    for app, by_state in frame.apps:
        failed = sum(by_state.get(s, 0) for s in FAILED_FINAL_STATES)
        apps.add_row(
            app,
            f"{by_state.get('running', 0):,}",
            f"{by_state.get('pending', 0) + by_state.get('launched', 0):,}",
            f"{sum(by_state.get(s, 0) for s in SUCCEEDED_FINAL_STATES):,}",
            Text(f"{failed:,}", style="red" if failed else ""),
            f"{sum(by_state.values()):,}",
        )

    parts: list = [header, Table.grid(padding=(0, 4))]
    parts[1].add_row(states, apps)

    slow = frame.slow
    if not slow.ready:
        parts.append(
            Text("Failure groups, stragglers and the forecast: reading the run…", style="dim")
        )
    forecast = slow.forecast
    if forecast is not None:
        if forecast.p50_finish and forecast.p90_finish:
            text = (
                f"Forecast: {forecast.tasks_left:,} tasks left; finishes around "
                f"{forecast.p50_finish[:19]} (P50), by {forecast.p90_finish[:19]} (P90)"
            )
        else:
            text = f"Forecast: {forecast.note or 'not available yet'}"
        parts.append(Text(text, style="bold"))

    failures = Table(title="Failure groups", title_justify="left")
    for column in ("cause", "count", "signature", "apps"):
        failures.add_column(
            column,
            justify="right" if column == "count" else "left",
            overflow="ellipsis",
            no_wrap=column == "signature",
            max_width=70 if column == "signature" else None,
        )
    for group in slow.failure_groups:
        failures.add_row(
            group.cause, f"{group.count:,}", group.signature, ", ".join(group.apps[:3])
        )
    if slow.ready:
        parts.append(
            failures if slow.failure_groups else Text("Failure groups: none", style="green")
        )

    if slow.stragglers:
        stragglers = Table(
            title="Stragglers (far slower than their app's median)", title_justify="left"
        )
        for column in ("task", "app", "run time", "vs median", "host", ""):
            stragglers.add_column(column)
        for s in slow.stragglers:
            stragglers.add_row(
                str(s.task_id),
                s.app,
                _duration(s.run_s),
                f"{s.ratio:.1f}",
                s.hostname or "—",
                "running" if s.running else "",
            )
        parts.append(stragglers)

    freshness = (
        f"data read {frame.read_at}; newest event "
        f"{frame.last_event[:19] if frame.last_event else '—'}"
        f" ({_age(frame.last_event_age_s)}, {convention_label(run.timestamp_convention)})"
    )
    if frame.heartbeat_age_s is not None and run.status == "running":
        freshness += f"; heartbeat {_age(frame.heartbeat_age_s)}"
    parts.append(Text(freshness, style="dim"))
    return Panel(Group(*parts), title="taskscope top", title_align="left")
