"""The dashboard's analysis: failure groups, forecast and advice at the top of the workflow
page (a deferred part), the full analysis page, the run-comparison page, and the critical
path drawn over the DAG and the timeline. Everything comes from `taskscope.store.analysis`."""

from __future__ import annotations

import sqlite3
from functools import partial
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from markupsafe import Markup, escape
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from taskscope.store import query
from taskscope.store.analysis.context import RunNotFound, run_context
from taskscope.store.analysis.critical_path import PARTS, PathStep, critical_path
from taskscope.store.analysis.diff import RunDiff, run_diff
from taskscope.store.analysis.report import RunAnalysis, analyze
from taskscope.store.timefmt import utc_text
from taskscope.store.timestamps import convention_label, parse_timestamp
from taskscope.visualize.latest import Latest, LatestResults
from taskscope.visualize.params import text_param
from taskscope.visualize.slow_parts import PART_RETRY_S, PART_WAIT_S
from taskscope.visualize.source import DatabaseSource

# The workflow page's analysis part answers within PART_WAIT_S: a first analysis that takes
# longer (a big run: tens of seconds at 10^6 tasks) goes on in the background, the part says
# it is being computed, and the browser asks again every PART_RETRY_S.

if TYPE_CHECKING:  # pages.py builds on this module's hooks; no import cycle at run time
    from taskscope.visualize.pages import Pages

PART_LABELS = {
    "dependency_wait_s": "dependency wait",
    "failed_tries_s": "failed tries",
    "worker_wait_s": "waiting for a worker",
    "dispatch_s": "dispatch",
    "run_s": "run",
    "return_s": "return",
}
PART_COLORS = {
    "dependency_wait_s": "#9aa5b1",
    "failed_tries_s": "#e377c2",
    "worker_wait_s": "#ff7f0e",
    "dispatch_s": "#17becf",
    "run_s": "#1f77b4",
    "return_s": "#6baed6",
}
PATH_COLOR = "#d62728"
COMPARE_CHOICES = 50  # other runs of the workflow offered for comparison


def diff_or_none(conn: sqlite3.Connection, a_run: str, b_run: str) -> RunDiff | None:
    try:
        return run_diff(conn, a_run, b_run)
    except RunNotFound:
        return None


class AnalysisViews:
    """Routes and parts added to `Pages` (taskscope.visualize.pages)."""

    def __init__(self, source: DatabaseSource, pages: Pages) -> None:
        self.source = source
        self.pages = pages
        # The analysis of a live run is served from its newest computation while a fresher
        # one is made (seconds of CPU on a big run; see visualize/latest.py).
        self.analyses = LatestResults(source)
        pages.templates.env.filters.setdefault("code_spans", code_spans)

    # ---- data ------------------------------------------------------------------------
    def _analysis(self, run_id: str, wait_s: float | None = None) -> Latest[RunAnalysis] | None:
        # The dashboard only reads (DESIGN: one writer per database): a live forecast is stored
        # by `taskscope analyze`, which the run's owner runs on purpose. A module function,
        # not a closure: on a big database it is computed in another process (apart.py).
        load = partial(analyze, run_id=run_id, read_files=self.pages.show_files)
        try:
            return self.analyses.get(("analysis", run_id, self.pages.show_files), load, wait_s)
        except RunNotFound as exc:
            raise HTTPException(404, f"There is no run {run_id!r} in this database.") from exc

    def critical_steps(self, run_id: str) -> list[PathStep]:
        """The critical path's steps, for overlays (no floor: that needs the whole graph; no
        dispatch share: the overlays draw each step's span, not how it splits)."""

        def load(conn: sqlite3.Connection) -> list[PathStep]:
            try:
                path = critical_path(
                    run_context(conn, run_id), with_floor=False, with_dispatch=False
                )
                return path.tasks
            except RunNotFound:
                return []

        return self.source.cached(("critical-steps", run_id), load)

    def _context(self, latest: Latest[RunAnalysis]) -> dict[str, Any]:
        analysis = latest.value
        path = analysis.critical_path
        return {
            "analysis": analysis,
            # Said on the page when the run has moved on since this analysis was made.
            "analysis_as_of": utc_text(latest.computed_at)[11:19] if latest.stale else None,
            "part_labels": PART_LABELS,
            "part_colors": PART_COLORS,
            "parts": PARTS,
            "path_shares": {
                p: (path.totals.get(p, 0.0) / path.makespan_s) if path.makespan_s else 0.0
                for p in PARTS
            },
            "current_groups": [g for g in analysis.failures if g.history != "gone"],
            "gone_groups": [g for g in analysis.failures if g.history == "gone"],
            "flagged_hosts": [h for h in analysis.hosts if h.flagged],
            "convention": convention_label(analysis.timestamp_convention),
        }

    # ---- the workflow page's part ----------------------------------------------------
    def workflow_part(self, request: Request, run_id: str) -> Response:
        from taskscope.visualize.pages import PartData

        latest = self._analysis(run_id, wait_s=PART_WAIT_S)
        if latest is None:  # a big run's first view: the page says so and asks again
            return self.pages.respond_part(
                request,
                "analysis",
                PartData({"analysis_pending": True}, retry_after_s=PART_RETRY_S),
                False,
            )
        context = {**self._context(latest), "run_href": ""}
        return self.pages.respond_part(
            request, "analysis", PartData(context), latest.value.status == "running"
        )

    # ---- the analysis page -----------------------------------------------------------
    def page(self, request: Request) -> Response:
        from taskscope.visualize.pages import PageData

        run_id = request.path_params["run_id"]
        run = self.source.cached(
            ("run-row", run_id), lambda conn: query.get_run(conn, run_id, with_counts=False)
        )
        if run is None:
            raise HTTPException(404, f"There is no run {run_id!r} in this database.")
        latest = self._analysis(run_id, wait_s=PART_WAIT_S)
        if latest is None:
            # A big run's first analysis: the page says it is being computed, and refreshes
            # itself (as a live page does) until the analysis replaces that line.
            context: dict[str, Any] = {"analysis_pending": True, "run": run}
            figures: dict[str, Any] = {}
        else:
            analysis = latest.value
            others = self._other_runs(run_id, run.workflow_name)
            context = {**self._context(latest), "run": run, "others": others}
            figures = (
                {"critical_path": critical_path_figure(analysis.critical_path.tasks)}
                if (analysis.critical_path.tasks)
                else {}
            )
        return self.pages.respond(
            request,
            PageData(
                "analysis.html",
                context,
                sections=["analysis_body"],
                figures=figures,
                live=run.status == "running" or latest is None,
                title="Analysis",
                crumbs=self.pages._run_crumbs(run) + [("Analysis", None)],
            ),
        )

    def _other_runs(self, run_id: str, workflow_name: str | None) -> list[Any]:
        def load(conn: sqlite3.Connection) -> list[Any]:
            page = query.list_runs(
                conn, limit=COMPARE_CHOICES, workflow_name=workflow_name, with_counts=False
            )
            return [r for r in page.items if r.run_id != run_id]

        return self.source.cached(("other-runs", run_id, workflow_name), load)

    # ---- comparing two runs ----------------------------------------------------------
    def diff(self, request: Request) -> Response:
        from taskscope.visualize.pages import PageData

        run_id = request.path_params["run_id"]
        against = text_param(request, "against", 200)
        run = self.source.cached(
            ("run-row", run_id), lambda conn: query.get_run(conn, run_id, with_counts=False)
        )
        if run is None:
            raise HTTPException(404, f"There is no run {run_id!r} in this database.")
        others = self._other_runs(run_id, run.workflow_name)
        if against is None:
            earlier = [r for r in others if (r.time_began or "") < (run.time_began or "")]
            against = earlier[0].run_id if earlier else (others[0].run_id if others else None)
        result: RunDiff | None = None
        error = None
        pending = False
        if against is None:
            error = "There is no other run of this workflow in the database to compare with."
        else:
            # As the analysis: long on big runs, so computed off the request when it is.
            load = partial(diff_or_none, a_run=against, b_run=run_id)
            latest = self.analyses.get(("diff", against, run_id), load, PART_WAIT_S)
            pending = latest is None
            if latest is not None and latest.value is None:
                raise HTTPException(404, f"There is no run {against!r} in this database.")
            result = latest.value if latest is not None else None
        context = {
            "run": run,
            "diff": result,
            "diff_pending": pending,
            "others": others,
            "against": against,
            "error": error,
            "seg": lambda s: quote(str(s), safe=""),
        }
        return self.pages.respond(
            request,
            PageData(
                "diff.html",
                context,
                sections=["diff_body"],
                title="Compare runs",
                live=pending,  # refreshes itself until the comparison is there
                crumbs=self.pages._run_crumbs(run) + [("Compare runs", None)],
            ),
        )

    # ---- overlays ----------------------------------------------------------------------
    def decorate_dag(self, run_id: str, figure: dict[str, Any]) -> dict[str, Any]:
        return highlight_dag(figure, [s.task_id for s in self.critical_steps(run_id)])

    def decorate_gantt(self, run_id: str, figure: dict[str, Any]) -> dict[str, Any]:
        return highlight_gantt(figure, self.critical_steps(run_id))


def code_spans(text: str) -> Markup:
    """Advice sentences mark settings and apps with backticks (for the terminal): in HTML
    they become <code>, everything else escaped."""
    parts = str(text).split("`")
    html = "".join(
        f"<code>{escape(p)}</code>" if i % 2 else str(escape(p)) for i, p in enumerate(parts)
    )
    return Markup(html)


def _ms(start: str, end: str) -> float:
    a, b = parse_timestamp(start), parse_timestamp(end)
    return max(0.0, (b - a).total_seconds() * 1000.0) if a and b else 0.0


def highlight_dag(figure: dict[str, Any], path_ids: list[int]) -> dict[str, Any]:
    """The DAG figure with the critical path drawn over it (the tasks of the path that the
    figure shows, in path order)."""
    positions: dict[int, tuple[float, float]] = {}
    for trace in figure.get("data", []):
        for x, y, link in zip(
            trace.get("x", []), trace.get("y", []), trace.get("customdata", []) or [], strict=False
        ):
            if isinstance(link, str) and link.startswith("task/"):
                positions[int(link[5:])] = (x, y)
    shown = [t for t in path_ids if t in positions]
    if len(shown) < 1:
        return figure
    figure = {**figure, "data": list(figure["data"])}
    figure["data"].append(
        {
            "type": "scatter",
            "mode": "lines+markers",
            "name": "critical path",
            "x": [positions[t][0] for t in shown],
            "y": [positions[t][1] for t in shown],
            "line": {"color": PATH_COLOR, "width": 3},
            "marker": {
                "size": 17,
                "symbol": "circle-open",
                "color": PATH_COLOR,
                "line": {"width": 2.5, "color": PATH_COLOR},
            },
            "customdata": [f"task/{t}" for t in shown],
            "text": [f"critical path step {shown.index(t) + 1}: task {t}" for t in shown],
            "hovertemplate": "%{text}<extra></extra>",
        }
    )
    return figure


def highlight_gantt(figure: dict[str, Any], steps: list[PathStep]) -> dict[str, Any]:
    """The timeline with an outlined bar for each critical-path step whose task it shows,
    spanning the step (predecessor's end -> the task's end)."""
    labels = {y for trace in figure.get("data", []) for y in trace.get("y", [])}
    rows = {
        int(str(label).split(" ", 1)[0]): label
        for label in labels
        if str(label).split(" ", 1)[0].isdigit()
    }
    shown = [s for s in steps if s.task_id in rows]
    if not shown:
        return figure
    figure = {**figure, "data": list(figure["data"])}
    figure["data"].append(
        {
            "type": "bar",
            "orientation": "h",
            "name": "critical path",
            "base": [s.start for s in shown],
            "x": [_ms(s.start, s.end) for s in shown],
            "y": [rows[s.task_id] for s in shown],
            "marker": {"color": "rgba(214,39,40,0.08)", "line": {"color": PATH_COLOR, "width": 2}},
            "customdata": [f"task/{s.task_id}" for s in shown],
            "text": [
                f"critical path: task {s.task_id} ({s.app}), {s.total_s:.2f} s" for s in shown
            ],
            "hovertemplate": "%{text}<extra></extra>",
            "textposition": "none",
        }
    )
    return figure


def critical_path_figure(steps: list[PathStep]) -> dict[str, Any]:
    """One stacked bar per step: how its time split into the parts."""
    labels = [f"{s.task_id} {s.app}" for s in steps]
    data = [
        {
            "type": "bar",
            "orientation": "h",
            "name": PART_LABELS[part],
            "y": labels,
            "x": [getattr(s, part) for s in steps],
            "marker": {"color": PART_COLORS[part]},
            "customdata": [f"task/{s.task_id}" for s in steps],
            "hovertemplate": f"{PART_LABELS[part]}: %{{x:.3f}} s<extra>%{{y}}</extra>",
        }
        for part in PARTS
    ]
    return {
        "data": data,
        "layout": {
            "barmode": "stack",
            "height": min(900, 140 + 22 * len(steps)),
            "margin": {"l": 10, "r": 10, "t": 30, "b": 40},
            "title": {"text": "Critical path: where each step's time went", "font": {"size": 14}},
            "xaxis": {"title": {"text": "seconds"}},
            "yaxis": {
                "autorange": "reversed",
                "type": "category",
                "automargin": True,
                "showticklabels": len(steps) <= 60,
            },
            "legend": {"orientation": "h", "y": -0.2},
        },
    }
