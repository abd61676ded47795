"""Figures of the whole run over time: tasks in each state, and the per-worker task stream."""

from __future__ import annotations

from typing import Any

from taskscope.store.states import STATE_COLORS
from taskscope.store.timeline_query import BANDS, StateTimeline, TaskStream
from taskscope.visualize.colors import app_colors
from taskscope.visualize.plot_text import markup
from taskscope.visualize.plots import Figure, _layout, fmt_seconds

BAND_COLORS = {
    "waiting": STATE_COLORS["pending"],
    "queued": STATE_COLORS["launched"],
    "running": STATE_COLORS["running"],
    "returning": "#9467bd",
    "done": STATE_COLORS["exec_done"],
    "failed": STATE_COLORS["failed"],
}
BAND_LABELS = {
    "waiting": "waiting (pending)",
    "queued": "queued (launched, not started on a worker)",
    "running": "running on a worker",
    "returning": "returning (ended on the worker, not yet processed)",
    "done": "done (exec_done, memo_done)",
    "failed": "failed (failed, dep_fail)",
}


def state_timeline_plot(timeline: StateTimeline) -> Figure:
    """Stacked areas: how many tasks are in each state at each moment of the run."""
    data = []
    for band in BANDS:
        values = timeline.bands[band]
        data.append(
            {
                "type": "scatter",
                "mode": "lines",
                "stackgroup": "tasks",
                "name": BAND_LABELS[band],
                "x": timeline.times,
                "y": values,
                "line": {"width": 0.5, "color": BAND_COLORS[band]},
                "fillcolor": BAND_COLORS[band],
                "hovertemplate": f"%{{y:,}} tasks {band} at %{{x:.1f}} s<extra></extra>",
            }
        )
    title = "Tasks in each state over the run" + (f" (app {timeline.app})" if timeline.app else "")
    return {
        "data": data,
        "layout": _layout(
            title,
            height=340,
            xaxis={"title": {"text": "seconds since the run started"}, "rangemode": "tozero"},
            yaxis={"title": {"text": "tasks"}, "rangemode": "tozero"},
        ),
    }


def stream_plot(stream: TaskStream) -> Figure:
    """One lane per worker; exact bars per try (hover, click to the task), or each lane's
    occupancy by app per time column (the bar's length is the busy share of the column)."""
    apps = sorted({b.app for b in stream.bars} | {c.app for c in stream.cells})
    colors = app_colors(apps)
    traces: dict[str, dict[str, Any]] = {}

    def trace(app: str) -> dict[str, Any]:
        if app not in traces:
            traces[app] = {
                "type": "bar",
                "orientation": "h",
                "name": app,
                "x": [],
                "base": [],
                "y": [],
                "text": [],
                "customdata": [],
                "marker": {"color": colors[app], "line": {"width": 0}},
                "hovertemplate": "%{text}<extra></extra>",
                "textposition": "none",
            }
        return traces[app]

    a, b = stream.window
    if stream.exact:
        for bar in stream.bars:
            end = bar.end if bar.end is not None else b
            t = trace(bar.app)
            t["base"].append(bar.start)
            t["x"].append(max(end - bar.start, 0.0))
            t["y"].append(bar.lane)
            t["customdata"].append(f"task/{bar.task_id}")
            ran = "still running" if bar.end is None else f"ran {fmt_seconds(end - bar.start)}"
            t["text"].append(
                markup(
                    "task {} try {} ({})<br>{}<br>{} from {} s",
                    bar.task_id,
                    bar.try_id,
                    bar.app,
                    bar.lane,
                    ran,
                    f"{bar.start:.3f}",
                )
            )
    else:
        # Tens of thousands of cells: the hover text is Plotly's template over each bar's own
        # numbers (the column's start as customdata, which no click follows), not a string
        # per bar (half the page's bytes, and most of the time to build it).
        width = stream.column_seconds
        hover = (
            "%{y}: %{fullData.name}, %{x:.0f} s busy of the "
            f"{fmt_seconds(width)} from %{{customdata:.0f}} s<extra></extra>"
        )
        previous: tuple[str, int] | None = None
        offset = 0.0
        # In (lane, column, app) order: a column's apps are stacked from its start.
        for lane, column, app, busy in sorted(stream.cells):
            if (lane, column) != previous:
                previous, offset = (lane, column), 0.0
            column_start = a + column * width
            share = min(busy, width)
            t = traces.get(app) or trace(app)
            t["base"].append(column_start + offset)
            t["x"].append(share)
            t["y"].append(lane)
            t["customdata"].append(column_start)
            offset += share
        for t in traces.values():
            t["hovertemplate"] = hover
            del t["text"]
    lanes = stream.lanes or sorted({y for t in traces.values() for y in t["y"]})
    title = "Task stream: one lane per worker" + (
        ""
        if stream.exact
        else f" (occupancy by app per {fmt_seconds(stream.column_seconds)}; zoom in or pick a "
        "window for each try)"
    )
    return {
        "data": list(traces.values()),
        "layout": _layout(
            title,
            barmode="overlay",
            bargap=0.15,
            height=min(1600, 140 + 22 * max(1, len(lanes))),
            xaxis={"title": {"text": "seconds since the run started"}, "range": [a, b]},
            yaxis={
                "type": "category",
                "categoryorder": "array",
                "categoryarray": lanes,
                "autorange": "reversed",
                "automargin": True,
                "showticklabels": len(lanes) <= 80,
            },
        ),
    }
