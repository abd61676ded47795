"""The run-over-time views: the workflow page's timeline part and the task stream page."""

from __future__ import annotations

import math
import sqlite3
from dataclasses import replace
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import Response

from taskscope.store import query, timeline_query
from taskscope.visualize import plots
from taskscope.visualize.params import text_param
from taskscope.visualize.timeline_plots import state_timeline_plot, stream_plot

if TYPE_CHECKING:  # pages.py imports this module
    from taskscope.visualize.pages import Pages

GANTT_WINDOW_TASKS = 60  # rows of a window's per-task Gantt: each labelled and readable
SMALL_RUN_TASKS = 60  # runs this small get their whole per-task Gantt by default


def seconds_param(request: Request, name: str) -> float | None:
    """A window bound in seconds since the run's start; None when absent or not a number."""
    raw = request.query_params.get(name)
    if raw is None or raw.strip() == "":
        return None
    try:
        value = float(raw)
    except ValueError:
        return None
    return value if math.isfinite(value) and value >= 0 else None


def timeline_part(pages: Pages, request: Request, run_id: str) -> Response:
    """Tasks in each state over the whole run (optionally one app), and the per-task Gantt
    of a chosen window (or of the whole run when it is small)."""
    app = text_param(request, "app")
    start, end = seconds_param(request, "from"), seconds_param(request, "to")

    def load(conn: sqlite3.Connection) -> dict[str, Any]:
        run = pages._run(conn, run_id)
        timeline = timeline_query.state_timeline(conn, run_id, app=app)
        window = None
        gantt = None
        if start is not None or end is not None:
            span = timeline.span.seconds if timeline else 0.0
            window = (start or 0.0, end if end is not None else span)
            ids = timeline_query.tasks_in_window(
                conn, run_id, window[0], window[1], app, GANTT_WINDOW_TASKS
            )
            gantt = query.timeline(conn, run_id, task_ids=ids, limit=GANTT_WINDOW_TASKS)
        elif run.task_count <= SMALL_RUN_TASKS:
            gantt = query.timeline(conn, run_id, limit=SMALL_RUN_TASKS)
        return {
            "run": run,
            "timeline": timeline,
            "gantt": gantt,
            "window": window,
            "app": app,
            "convention": run.timestamp_convention,
        }

    answer = pages.part_data(("timeline-part", run_id, app, start, end), load)
    if answer.value is None:
        return pages.respond_answer(request, "timeline", answer, {})
    data = answer.value
    figures = {}
    if data["timeline"] is not None:
        figures["timeline"] = state_timeline_plot(data["timeline"])
    gantt = data["gantt"]
    if gantt is not None and gantt.items:
        figure = plots.gantt(gantt.items, "UTC" if data["convention"] == "utc" else "local time")
        rows = len(gantt.items)
        figure["layout"]["height"] = 160 + 20 * rows  # a readable label on every row
        figure["layout"]["yaxis"]["showticklabels"] = True
        if pages.decorate_gantt is not None:  # e.g. the critical path, drawn over it
            figure = pages.decorate_gantt(run_id, figure)
        figures["window_gantt"] = figure
    context = {**data, "quote": lambda s: quote(s, safe=""), "gantt_limit": GANTT_WINDOW_TASKS}
    return pages.respond_answer(request, "timeline", replace(answer, value=context), figures)


def stream_page(pages: Pages, request: Request) -> Response:
    """One lane per worker over a window of the run (the whole run by default)."""
    from taskscope.visualize.pages import PageData

    run_id = request.path_params["run_id"]
    start, end = seconds_param(request, "from"), seconds_param(request, "to")

    def load(conn: sqlite3.Connection) -> dict[str, Any]:
        run = pages._run(conn, run_id)
        return {"run": run, "stream": timeline_query.task_stream(conn, run_id, start, end)}

    data = pages.source.cached(("stream", run_id, start, end), load)
    stream = data["stream"]
    figures = {"stream": stream_plot(stream)} if stream is not None and stream.lanes else {}
    run = data["run"]
    return pages.respond(
        request,
        PageData(
            "stream.html",
            {**data},
            sections=["stream_info"],
            figures=figures,
            live=run.status == "running",
            title="Task stream",
            crumbs=pages._run_crumbs(run) + [("Task stream", None)],
        ),
    )
