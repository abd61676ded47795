"""`taskscope report`: one self-contained HTML file about a run that opens offline.

Everything the page needs is inside the file: the data as JSON, the styles, and the Plotly
bundle the dashboard already serves (from the installed ``plotly`` package, 4.8 MB; embedded
gzipped and base64-encoded, 1.96 MB). The data is aggregated so that its size does not grow
with the run: the timeline is workers busy per app over `TIMELINE_BUCKETS` time buckets, usage
is `USAGE_BUCKETS` buckets, the app table has at most `MAX_APPS` rows. A run of 10^5 tasks
makes a file of about 2.1 MB.
"""

from __future__ import annotations

import base64
import gzip
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TextIO

from jinja2 import Environment, FileSystemLoader, select_autoescape

from taskscope.store import query
from taskscope.store.activity import RunActivity, run_activity
from taskscope.store.analysis.context import run_context
from taskscope.store.analysis.critical_path import CriticalPath, critical_path
from taskscope.store.analysis.failures import FailureGroup, failure_groups
from taskscope.store.records import AppDistribution, AppStats, RunSummary, UsageSeries
from taskscope.store.states import RUN_STATUS_COLORS, STATE_COLORS, state_color
from taskscope.store.timestamps import convention_label
from taskscope.version import taskscope_version
from taskscope.visualize import plots
from taskscope.visualize.app import PLOTLY_JS, fmt_bytes, fmt_number
from taskscope.visualize.colors import app_colors

TIMELINE_BUCKETS = 200
USAGE_BUCKETS = 200
MAX_APPS = 200
MAX_FAILURE_ROWS = 25
TEMPLATES = Path(__file__).with_name("templates")
BUNDLE_MARKER = "/*__PLOTLY_BUNDLE__*/"
# The parts `collect` reads, in order (it reports each one to its `step` callback).
REPORT_PARTS = (
    "summary",
    "apps",
    "timeline",
    "resource usage",
    "distributions",
    "failures",
    "critical path",
)
MAX_PATH_STEPS = 60  # critical path steps listed (the longest chains are summed, not listed)


@dataclass
class ReportData:
    """Everything the report shows about one run."""

    summary: RunSummary
    state_counts: dict[str, int]
    apps: list[AppStats]
    apps_total: int
    activity: RunActivity | None
    usage: UsageSeries | None
    distributions: list[AppDistribution]
    failures: list[FailureGroup]  # the analysis' failure groups, largest first
    critical_path: CriticalPath | None
    database: str
    generated_at: str
    extra_sections: list[tuple[str, str]] = field(default_factory=list)  # (title, html)


def collect(
    conn: sqlite3.Connection,
    run_id: str,
    database: str,
    step: Callable[[str], None] = lambda name: None,
) -> ReportData | None:
    """Read what the report shows; `step` is told the name of each part as it starts."""
    step("summary")
    summary = query.run_summary(conn, run_id)
    if summary is None:
        return None
    states = query.state_counts(conn, run_id, summary.run.task_count)
    step("apps")
    apps = query.app_summary(conn, run_id)
    step("timeline")
    activity = run_activity(conn, run_id, TIMELINE_BUCKETS)
    step("resource usage")
    usage = query.run_usage(conn, run_id, buckets=USAGE_BUCKETS)
    step("distributions")
    distributions = query.app_distributions(conn, run_id)
    step("failures")
    ctx = run_context(conn, run_id)
    # No files are read: a report must not embed the contents of files the database names.
    failures = failure_groups(ctx, read_files=False)[:MAX_FAILURE_ROWS]
    step("critical path")
    path = critical_path(ctx)
    return ReportData(
        summary=summary,
        state_counts=states,
        apps=apps[:MAX_APPS],
        apps_total=len(apps),
        activity=activity,
        usage=usage,
        distributions=distributions[:MAX_APPS],
        failures=failures,
        critical_path=path,
        database=database,
        generated_at=datetime.now().astimezone().isoformat(timespec="seconds"),
    )


def _rounded(values: list[float], digits: int = 3) -> list[float]:
    """Fewer digits in the JSON: a plot cannot show more, and the file stays small."""
    return [round(v, digits) for v in values]


def timeline_figure(activity: RunActivity, label: str) -> dict:
    """Stacked areas: tries running per app over the run, and tasks finished per bucket."""
    colors = app_colors(list(activity.busy_by_app))
    data: list[dict] = []
    for app, series in activity.busy_by_app.items():
        data.append(
            {
                "type": "scatter",
                "mode": "lines",
                "stackgroup": "busy",
                "name": app,
                "x": activity.times,
                "y": _rounded(series),
                "line": {"width": 0.5, "shape": "hv"},
                "fillcolor": colors.get(app, "#bab0ac"),
                "marker": {"color": colors.get(app)},
                "hovertemplate": f"{app}: %{{y:.2f}} running<extra></extra>",
            }
        )
    data.append(
        {
            "type": "bar",
            "name": "tasks finished",
            "x": activity.times,
            "y": activity.finished,
            "yaxis": "y2",
            "marker": {"color": "rgba(60,60,60,0.35)"},
            "hovertemplate": "%{y} tasks finished<extra></extra>",
        }
    )
    layout = plots._layout(
        "Workers busy by app, and tasks finished",
        height=380,
        # anchored to the lower plot, so the time axis sits at the foot of both
        xaxis={"type": "date", "title": {"text": label}, "anchor": "y2"},
        yaxis={"title": {"text": "tries running"}, "rangemode": "tozero", "domain": [0.32, 1]},
        yaxis2={"title": {"text": "finished"}, "rangemode": "tozero", "domain": [0, 0.25]},
        bargap=0,
    )
    return {"data": data, "layout": layout}


def state_figure(state_counts: dict[str, int]) -> dict:
    states = [s for s in STATE_COLORS if state_counts.get(s)] + sorted(
        s for s in state_counts if s not in STATE_COLORS and state_counts[s]
    )
    return {
        "data": [
            {
                "type": "bar",
                "orientation": "h",
                "y": states,
                "x": [state_counts[s] for s in states],
                "marker": {"color": [state_color(s) for s in states]},
                "hovertemplate": "%{y}: %{x:,}<extra></extra>",
            }
        ],
        "layout": plots._layout(
            "Tasks by state",
            height=60 + 28 * max(1, len(states)),
            showlegend=False,
            margin={"l": 110, "r": 20, "t": 40, "b": 30},
            yaxis={"autorange": "reversed"},
        ),
    }


def figures(data: ReportData) -> dict[str, dict]:
    label = convention_label(data.summary.timestamp_convention)
    result: dict[str, dict] = {}
    if data.state_counts:
        result["states"] = state_figure(data.state_counts)
    if data.activity is not None and data.activity.busy_by_app:
        result["timeline"] = timeline_figure(data.activity, label)
    if data.usage is not None:
        usage = UsageSeries(
            data.usage.bucket_seconds,
            data.usage.times,
            _rounded(data.usage.cpu_cores),
            [round(v) for v in data.usage.memory_bytes],
            _rounded(data.usage.workers_busy),
            data.usage.capacity,
            data.usage.sample_count,
            data.usage.sample_fraction,
        )
        result["workers"] = plots.usage_plot(usage, "workers", label)
        if usage.sample_count:
            result["cpu"] = plots.usage_plot(usage, "cpu", label)
            result["memory"] = plots.usage_plot(usage, "memory", label)
    for which, name in (
        ("duration_s", "dist_duration"),
        ("peak_memory_bytes", "dist_memory"),
        ("cpu_time_s", "dist_cpu"),
    ):
        if any(getattr(d, which) is not None for d in data.distributions):
            result[name] = plots.distribution_plot(data.distributions, which)
    return result


def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(str(TEMPLATES)), autoescape=select_autoescape(["html"])
    )
    env.filters.update(seconds=plots.fmt_seconds, bytes=fmt_bytes, number=fmt_number)
    env.globals.update(
        state_color=state_color,
        run_status_color=lambda status: RUN_STATUS_COLORS.get(status, "#555"),
    )
    return env


def plotly_payload(plotly_js: Path = PLOTLY_JS) -> str:
    """The Plotly bundle gzipped and base64-encoded: 1.96 MB instead of 4.8 MB (plotly.js
    3.x), so a report keeps room under 5 MB for the data of any run."""
    packed = gzip.compress(plotly_js.read_bytes(), compresslevel=6, mtime=0)
    return base64.b64encode(packed).decode("ascii")


def write_report(
    data: ReportData, out: TextIO, plotly_js: Path = PLOTLY_JS, compress: bool = True
) -> None:
    """Render the report into `out` with the Plotly bundle inside it: gzipped (unpacked by the
    browser's DecompressionStream: Chrome 80, Firefox 113, Safari 16.4 and later) or, with
    `compress=False`, as plain JavaScript for older browsers."""
    template = _environment().get_template("report.html")
    page = template.render(
        data=data,
        run=data.summary.run,
        summary=data.summary,
        figures=figures(data),
        convention=convention_label(data.summary.timestamp_convention),
        version=taskscope_version(),
        max_path_steps=MAX_PATH_STEPS,
        bundle_marker=BUNDLE_MARKER,
        compressed=compress,
    )
    head, _, tail = page.partition(BUNDLE_MARKER)
    out.write(head)
    if compress:
        out.write(plotly_payload(plotly_js))
    else:
        # A literal "</script" inside the bundle would end its element early.
        out.write(plotly_js.read_text(encoding="utf-8").replace("</script", "<\\/script"))
    out.write(tail)
