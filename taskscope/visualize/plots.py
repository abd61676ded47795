"""Plotly figure specifications (plain JSON-able dicts) built from query records.

The browser draws them with the locally served plotly.min.js; nothing here imports plotly's
Python package, so building a figure costs only the data it shows.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any

from taskscope.store.records import (
    AppDistribution,
    AppGraph,
    BoxStats,
    ResourceSampleRow,
    TaskGraph,
    TimelineTask,
    UsageSeries,
)
from taskscope.visualize.colors import app_colors, state_color
from taskscope.visualize.dag_layout import layered_positions
from taskscope.visualize.plot_text import markup

# Nodes beyond which the DAG is drawn with WebGL (scattergl). Above the pages' 2,000-task
# limit on purpose: where WebGL is unavailable (headless or remote browsers) scattergl draws
# nothing useful, and 2,000 SVG markers draw in well under a second.
WEBGL_ABOVE = 5000
Figure = dict[str, Any]


def _layout(title: str, **extra: object) -> dict[str, Any]:
    layout: dict[str, Any] = {
        "title": {"text": title, "font": {"size": 15}},
        "margin": {"l": 60, "r": 20, "t": 40, "b": 90},
        "hovermode": "closest",
        "paper_bgcolor": "#ffffff",
        "plot_bgcolor": "#fbfcfd",
        # At the foot of the figure, not at a fraction of the plot's height below it: there
        # it landed on the x-axis title of short plots.
        "legend": {"orientation": "h", "yref": "container", "y": 0, "yanchor": "bottom"},
    }
    if extra.get("showlegend") is False:
        layout["margin"] = {**layout["margin"], "b": 45}  # no legend to leave room for
    layout.update(extra)
    return layout


def fmt_seconds(value: float | None) -> str:
    if value is None:
        return "—"
    if value < 1:
        return f"{value * 1000:.0f} ms"
    if value < 120:
        return f"{value:.2f} s"
    if value < 7200:
        return f"{value / 60:.1f} min"
    return f"{value / 3600:.1f} h"


def gantt(tasks: Sequence[TimelineTask], convention_label: str) -> Figure:
    """Horizontal bars: one row per task, one coloured bar per state it spent time in."""
    by_state: dict[str, dict[str, list[Any]]] = {}
    for task in tasks:
        label = f"{task.task_id} {task.app}"
        for seg in task.segments:
            trace = by_state.setdefault(
                seg.state, {"x": [], "base": [], "y": [], "customdata": [], "text": []}
            )
            trace["base"].append(seg.start)
            trace["x"].append(_ms_between(seg.start, seg.end))
            trace["y"].append(label)
            trace["customdata"].append(f"task/{task.task_id}")
            trace["text"].append(f"task {task.task_id} ({task.app}): {seg.state}")
    data = [
        {
            "type": "bar",
            "orientation": "h",
            "name": state,
            "marker": {"color": state_color(state)},
            "hovertemplate": "%{text}<br>from %{base}<extra></extra>",
            "textposition": "none",  # the text is for the tooltip, not drawn on the bars
            **values,
        }
        for state, values in by_state.items()
    ]
    rows = max(1, len(tasks))
    return {
        "data": data,
        "layout": _layout(
            "Task timeline by state",
            barmode="overlay",
            height=min(1400, 160 + rows * 9),
            xaxis={"type": "date", "title": {"text": f"time ({convention_label})"}},
            yaxis={
                "autorange": "reversed",
                "showticklabels": rows <= 60,
                "type": "category",
                "automargin": True,
            },
        ),
    }


def _ms_between(start: str, end: str) -> float:
    from taskscope.store.timestamps import parse_timestamp

    a, b = parse_timestamp(start), parse_timestamp(end)
    if a is None or b is None:
        return 0.0
    return max(0.0, (b - a).total_seconds() * 1000.0)


def _edge_trace(
    points: dict[Hashable, tuple[float, float]],
    edges: Sequence[tuple[Any, ...]],
    dash: str,
    name: str,
    gl: bool,
) -> dict[str, Any]:
    xs: list[Any] = []
    ys: list[Any] = []
    for source, target in edges:
        if source in points and target in points:
            (x0, y0), (x1, y1) = points[source], points[target]
            xs += [x0, x1, None]
            ys += [y0, y1, None]
    return {
        "type": "scattergl" if gl else "scatter",
        "mode": "lines",
        "x": xs,
        "y": ys,
        "name": name,
        "hoverinfo": "skip",
        "line": {"color": "#b8c0c8", "width": 1, "dash": dash},
        "showlegend": bool(xs),
    }


def task_dag(graph: TaskGraph, colour_by: str, centre: int | None = None) -> Figure:
    """Every task a node, coloured by app or by state, with dependency and join edges;
    `centre` (a task id) is ringed, for the neighbourhood of one task."""
    points = layered_positions(
        [n.task_id for n in graph.nodes], [(e.source, e.target) for e in graph.edges]
    )
    gl = len(graph.nodes) > WEBGL_ABOVE
    data = [
        _edge_trace(
            points,
            [(e.source, e.target) for e in graph.edges if e.kind == "depends"],
            "solid",
            "dependency",
            gl,
        ),
        _edge_trace(
            points,
            [(e.source, e.target) for e in graph.edges if e.kind == "joins"],
            "dot",
            "join",
            gl,
        ),
    ]
    colors = app_colors([n.app for n in graph.nodes])
    groups: dict[str, list[Any]] = {}
    for node in graph.nodes:
        key = node.app if colour_by == "app" else node.state
        groups.setdefault(key, []).append(node)
    for key in sorted(groups):
        members = groups[key]
        color = colors[key] if colour_by == "app" else state_color(key)
        data.append(
            {
                "type": "scattergl" if gl else "scatter",
                "mode": "markers",
                "name": key,
                "x": [points[n.task_id][0] for n in members],
                "y": [points[n.task_id][1] for n in members],
                "marker": {
                    "color": color,
                    "size": 11 if len(graph.nodes) < 400 else 7,
                    "line": {"color": "#ffffff", "width": 1},
                },
                "customdata": [f"task/{n.task_id}" for n in members],
                "text": [
                    markup(
                        "app: {}<br>task: {}<br>state: {}<br>duration: {}",
                        n.app,
                        n.task_id,
                        n.state,
                        fmt_seconds(n.duration_s),
                    )
                    for n in members
                ],
                "hovertemplate": "%{text}<extra></extra>",
            }
        )
    if centre is not None and centre in points:
        data.append(
            {
                "type": "scattergl" if gl else "scatter",
                "mode": "markers",
                "name": f"task {centre}",
                "x": [points[centre][0]],
                "y": [points[centre][1]],
                "hoverinfo": "skip",
                "marker": {
                    "symbol": "circle-open",
                    "size": 22,
                    "color": "#111111",
                    "line": {"width": 3},
                },
            }
        )
    height = max(420, min(1600, 24 * _widest_layer(points)))
    return {
        "data": data,
        "layout": _layout(
            "",
            height=height,
            showlegend=True,
            legend={"orientation": "v", "x": 1.01, "y": 1},
            xaxis={"title": {"text": "dependency depth"}, "zeroline": False, "dtick": 1},
            yaxis={"visible": False},
            margin={"l": 20, "r": 20, "t": 20, "b": 45},
        ),
    }


def _widest_layer(points: dict[Hashable, tuple[float, float]]) -> int:
    counts: dict[float, int] = {}
    for x, _ in points.values():
        counts[x] = counts.get(x, 0) + 1
    return max(counts.values(), default=1)


def _dominant_state(state_counts: dict[str, int]) -> str:
    for state in ("failed", "dep_fail", "running", "launched", "pending", "fail_retryable"):
        if state_counts.get(state):
            return state
    return max(state_counts, key=lambda s: state_counts[s]) if state_counts else "pending"


def app_dag(graph: AppGraph, colour_by: str) -> Figure:
    """The graph collapsed to apps: node size grows with task count; click opens the app's tasks."""
    points = layered_positions(
        [n.app for n in graph.nodes], [(e.source, e.target) for e in graph.edges]
    )
    data = [
        _edge_trace(
            points,
            [(e.source, e.target) for e in graph.edges],
            "solid",
            "dependencies between apps",
            False,
        )
    ]
    label_x, label_y, label_text = [], [], []
    for edge in graph.edges:
        if edge.source in points and edge.target in points and edge.source != edge.target:
            (x0, y0), (x1, y1) = points[edge.source], points[edge.target]
            label_x.append((x0 + x1) / 2)
            label_y.append((y0 + y1) / 2)
            label_text.append(f"{edge.count:,}")
    data.append(
        {
            "type": "scatter",
            "mode": "text",
            "x": label_x,
            "y": label_y,
            "text": label_text,
            "hoverinfo": "skip",
            "showlegend": False,
            "textfont": {"color": "#6b7785", "size": 11},
        }
    )
    colors = app_colors([n.app for n in graph.nodes])
    biggest = max((n.tasks for n in graph.nodes), default=1)
    for node in graph.nodes:
        state = _dominant_state(node.state_counts)
        key = node.app if colour_by == "app" else state
        counts = sorted(node.state_counts.items())
        breakdown = "<br>".join(["{}: {}"] * len(counts))
        data.append(
            {
                "type": "scatter",
                "mode": "markers+text",
                "name": key,
                "legendgroup": key,
                "x": [points[node.app][0]],
                "y": [points[node.app][1]],
                "text": [node.app],
                "textposition": "top center",
                "marker": {
                    "size": 18 + 40 * (node.tasks / biggest) ** 0.5,
                    "color": colors[node.app] if colour_by == "app" else state_color(state),
                    "line": {"color": "#ffffff", "width": 1},
                },
                "customdata": [f"dag?view=tasks&app={_quote(node.app)}&colour={colour_by}"],
                "hovertext": [
                    markup(
                        f"app: {{}}<br>tasks: {{}}<br>{breakdown}",
                        node.app,
                        f"{node.tasks:,}",
                        *(part for s, c in counts for part in (s, f"{c:,}")),
                    )
                ],
                "hovertemplate": "%{hovertext}<extra></extra>",
            }
        )
    return {
        "data": data,
        "layout": _layout(
            "",
            height=max(420, 120 * _widest_layer(points)),
            xaxis={"title": {"text": "dependency depth"}, "zeroline": False, "dtick": 1},
            yaxis={"visible": False},
            margin={"l": 20, "r": 20, "t": 20, "b": 45},
            legend={"orientation": "v", "x": 1.01, "y": 1},
        ),
    }


def _quote(text: str) -> str:
    from urllib.parse import quote

    return quote(text, safe="")


def usage_plot(series: UsageSeries, which: str, convention_label: str) -> Figure:
    """One of: cpu (cores in use), memory (GiB in use), workers (busy), against capacity."""
    cap = series.capacity
    capacity: float | None
    if which == "cpu":
        values, capacity, title, unit = series.cpu_cores, cap.cpus, "CPU in use", "cores"
    elif which == "memory":
        values = [v / 2**30 for v in series.memory_bytes]
        capacity = cap.memory_bytes / 2**30 if cap.memory_bytes else None
        title, unit = "Memory in use (resident, summed over tasks)", "GiB"
    else:
        values, capacity, title, unit = series.workers_busy, cap.workers, "Workers busy", "workers"
    data = [
        {
            "type": "scatter",
            "mode": "lines",
            "x": series.times,
            "y": values,
            "name": f"in use ({unit})",
            "line": {"shape": "hv", "color": "#1f77b4"},
            "fill": "tozeroy",
            "hovertemplate": f"%{{y:.2f}} {unit}<extra></extra>",
        }
    ]
    if which == "workers":
        data[0]["name"] = "busy (running → running_ended, workers' clocks)"
        if any(series.in_flight):
            sampled = (
                ""
                if series.in_flight_fraction >= 1
                else (f", from {series.in_flight_fraction:.1%} of tries")
            )
            # Off by default: it is not bounded by the workers, and would set the axis.
            data.append(
                {
                    "type": "scatter",
                    "mode": "lines",
                    "x": series.times,
                    "y": series.in_flight,
                    "visible": "legendonly",
                    "name": f"launched, not returned (kernel's view: + queue and return "
                    f"delay{sampled})",
                    "line": {"shape": "hv", "color": "#999", "dash": "dot"},
                    "hovertemplate": "%{y:.2f} tries<extra></extra>",
                }
            )
    if capacity:
        data.append(
            {
                "type": "scatter",
                "mode": "lines",
                "x": [series.times[0], series.times[-1]],
                "y": [capacity, capacity],
                "name": f"capacity ({capacity:,.1f} {unit})",
                "line": {"dash": "dash", "color": "#d62728"},
                "hoverinfo": "skip",
            }
        )
    # The axis shows what is used (with room for the capacity line when it is near), not a
    # flat line at the bottom of a machine's total memory.
    top = max(values, default=0.0)
    yaxis: dict[str, Any] = {"title": {"text": unit}, "rangemode": "tozero"}
    if capacity and top > 0 and capacity > top * 1.5:
        yaxis["range"] = [0, top * 1.15]
        title += f" (capacity {capacity:,.1f} {unit}, above the axis)"
    return {
        "data": data,
        "layout": _layout(
            title,
            height=300,
            xaxis={"type": "date", "title": {"text": convention_label}},
            yaxis=yaxis,
        ),
    }


def distribution_plot(dists: Sequence[AppDistribution], which: str) -> Figure:
    """Box plots per app from quartiles computed in SQL."""
    titles = {
        "duration_s": ("Run time per task", "seconds", 1.0),
        "peak_memory_bytes": ("Peak resident memory per task", "MiB", 1 / 2**20),
        "cpu_time_s": ("CPU time per task (user + system)", "seconds", 1.0),
    }
    title, unit, scale = titles[which]
    rows = [(d.app, getattr(d, which)) for d in dists if getattr(d, which) is not None]
    colors = app_colors([app for app, _ in rows])
    data = []
    for app, stats in rows:
        assert isinstance(stats, BoxStats)
        data.append(
            {
                "type": "box",
                "name": app,
                "x": [app],
                "q1": [stats.q1 * scale],
                "median": [stats.median * scale],
                "q3": [stats.q3 * scale],
                "lowerfence": [stats.minimum * scale],
                "upperfence": [stats.maximum * scale],
                "mean": [stats.mean * scale],
                "marker": {"color": colors[app]},
                # The app name comes in through %{x}, escaped; never into the template itself.
                "hovertemplate": f"%{{x}} (n={stats.count:,})<extra></extra>",
            }
        )
    return {
        "data": data,
        "layout": _layout(
            title,
            height=320,
            showlegend=False,
            xaxis={"automargin": True},  # tilted app names
            yaxis={"title": {"text": unit}, "rangemode": "tozero"},
        ),
    }


def try_resource_plot(samples: Sequence[ResourceSampleRow], which: str) -> Figure:
    """Per-try lines over seconds since the try started: memory (MiB) or CPU time (s)."""
    tries: dict[int, list[ResourceSampleRow]] = {}
    for sample in samples:
        tries.setdefault(sample.try_id, []).append(sample)
    data = []
    for try_id, rows in sorted(tries.items()):
        if which == "memory":
            ys = [(s.memory_resident or 0) / 2**20 for s in rows]
        else:
            ys = [(s.cpu_user or 0) + (s.cpu_system or 0) for s in rows]
        data.append(
            {
                "type": "scatter",
                "mode": "lines+markers",
                "name": f"try {try_id}",
                "x": [s.seconds for s in rows],
                "y": ys,
            }
        )
    title, unit = (
        ("Resident memory", "MiB") if which == "memory" else ("CPU time (user + system)", "seconds")
    )
    return {
        "data": data,
        "layout": _layout(
            title,
            height=280,
            xaxis={"title": {"text": "seconds since the try started"}},
            yaxis={"title": {"text": unit}, "rangemode": "tozero"},
        ),
    }
