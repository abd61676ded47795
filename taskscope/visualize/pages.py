"""The dashboard's pages. Each page builds one context from the query layer; the HTML view
renders it, and the same URL with ``?format=json`` returns its live sections and figures so a
running workflow's page refreshes itself without a reload."""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import quote, urlencode

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.templating import Jinja2Templates

from taskscope.store import query, run_extra
from taskscope.store.graph_query import NEIGHBOURHOOD_DEPTH, NEIGHBOURHOOD_LIMIT
from taskscope.store.records import RunRow
from taskscope.store.resource_query import has_resource_samples
from taskscope.store.spool import unwritten_note
from taskscope.store.states import is_final
from taskscope.store.timestamps import convention_label
from taskscope.visualize import plots
from taskscope.visualize.filetail import tails
from taskscope.visualize.output_paths import output_base
from taskscope.visualize.params import choice_param, int_param, relative_root, text_param
from taskscope.visualize.plot_text import plain_figures
from taskscope.visualize.slow_parts import PART_RETRY_S, PartAnswer, SlowParts
from taskscope.visualize.source import DatabaseSource
from taskscope.visualize.timeline_pages import stream_page, timeline_part

RUNS_PER_PAGE = 25
TASKS_PER_PAGE = 50
GANTT_TASKS = 200
DAG_TASK_LIMIT = 2000
REFRESH_SECONDS = 5
# The resource page's deferred parts and the usage series each one computes.
RESOURCE_PARTS: dict[str, tuple[str, ...]] = {
    "usage_workers": ("workers",),
    "usage_samples": ("samples",),
    "distributions": (),
}


@dataclass
class PageData:
    """What a page shows: template context, live sections, figures, and whether it is live."""

    template: str
    context: dict[str, Any]
    sections: list[str] = field(default_factory=list)
    figures: dict[str, dict[str, Any]] = field(default_factory=dict)
    live: bool = False
    title: str = ""
    crumbs: list[tuple[str, str | None]] = field(default_factory=list)


@dataclass
class PartData:
    """A part of a page that the browser loads after the page itself (``?part=NAME``): the
    slow statistics, so that no single response waits for all of them."""

    context: dict[str, Any]
    figures: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Still being computed: the browser asks for the part again after this many seconds.
    retry_after_s: float | None = None


SQLITE_MAX_INTEGER = 2**63 - 1


def _not_found(what: str) -> HTTPException:
    return HTTPException(status_code=404, detail=what)


class Pages:
    def __init__(
        self, source: DatabaseSource, templates: Jinja2Templates, show_files: bool = True
    ) -> None:
        self.source = source
        self.templates = templates
        # Whether the task page may show the contents of stdout/stderr files named in the
        # database: off when the dashboard is reachable from the network unless asked for.
        self.show_files = show_files
        # Hooks other view modules add (taskscope.visualize.analysis_view): more deferred
        # parts of the workflow page, and overlays on the task DAG and the timeline.
        self.workflow_parts: dict[str, Callable[[Request, str], Response]] = {}
        self.decorate_dag: Callable[[str, dict[str, Any]], dict[str, Any]] | None = None
        self.decorate_gantt: Callable[[str, dict[str, Any]], dict[str, Any]] | None = None
        self.slow_parts = SlowParts(source)

    # ---- rendering -------------------------------------------------------------------
    def respond(self, request: Request, page: PageData) -> Response:
        root = relative_root(request.url.path)
        context = {
            **page.context,
            "root": root,
            "title": page.title,
            "crumbs": page.crumbs,
            "live": page.live,
            "refresh_seconds": REFRESH_SECONDS,
            "figures": plain_figures(page.figures),
            "generated_at": datetime.now().astimezone().isoformat(timespec="seconds"),
            "database": str(self.source.path),
            # Events a writer spooled and has not written yet (store/spool.py), if any.
            "unwritten": unwritten_note(self.source.path, self.source.read),
        }
        if request.query_params.get("format") == "json":
            sections = {
                name: self.templates.get_template(f"_{name}.html").render(context)
                for name in page.sections
            }
            return JSONResponse(
                {
                    "live": page.live,
                    "generated_at": context["generated_at"],
                    "last_activity": context.get("last_activity"),
                    "sections": sections,
                    "figures": context["figures"],
                }
            )
        return self.templates.TemplateResponse(request, page.template, context)

    def respond_part(
        self, request: Request, name: str, part: PartData, live: bool, template: str | None = None
    ) -> Response:
        """The JSON of one deferred part: its section's HTML (`template`, by default the
        part's own) and its figures."""
        context = {
            **part.context,
            "root": relative_root(request.url.path),
            "figures": plain_figures(part.figures),
        }
        html = self.templates.get_template(template or f"_part_{name}.html").render(context)
        answer = {
            "live": live,
            "generated_at": datetime.now().astimezone().isoformat(timespec="seconds"),
            "sections": {f"part_{name}": html},
            "figures": context["figures"],
        }
        if part.retry_after_s is not None:
            answer["retry_after"] = part.retry_after_s
        return JSONResponse(answer)

    def part_data(
        self, key: tuple[Any, ...], load: Callable[[sqlite3.Connection], dict[str, Any]]
    ) -> PartAnswer[dict[str, Any]]:
        """A deferred part's data within PART_WAIT_S (visualize/slow_parts.py)."""
        return self.slow_parts.get(key, load)

    def respond_answer(
        self,
        request: Request,
        name: str,
        answer: PartAnswer[dict[str, Any]],
        figures: dict[str, dict[str, Any]],
    ) -> Response:
        """The part from `answer`: its data (asked for again while a fresher read goes on), or
        that it is still being computed."""
        if answer.value is None:
            pending = PartData({}, retry_after_s=PART_RETRY_S)
            return self.respond_part(request, name, pending, False, "_part_pending.html")
        retry = None if answer.fresh else PART_RETRY_S
        part = PartData(answer.value, figures, retry_after_s=retry)
        return self.respond_part(request, name, part, answer.value["run"].status == "running")

    def _run(self, conn: sqlite3.Connection, run_id: str) -> RunRow:
        run = query.get_run(conn, run_id, with_counts=False)
        if run is None:
            raise _not_found(f"There is no run {run_id!r} in this database.")
        return run

    def _run_crumbs(self, run: RunRow) -> list[tuple[str, str | None]]:
        return [
            ("Workflows", ""),
            (run.workflow_name or run.run_id, f"workflow/{quote(run.run_id, safe='')}/"),
        ]

    # ---- workflows list --------------------------------------------------------------
    def workflows(self, request: Request) -> Response:
        sort = choice_param(request, "sort", list(query.RUN_SORTS), "time_began")
        order = choice_param(request, "order", ["asc", "desc"], "desc")
        page_no = int_param(request, "page", 1, 1)
        name = text_param(request, "name")

        def load(conn: sqlite3.Connection) -> dict[str, Any]:
            runs = query.list_runs(
                conn,
                sort=sort,
                descending=order == "desc",
                limit=RUNS_PER_PAGE,
                offset=(page_no - 1) * RUNS_PER_PAGE,
                workflow_name=name,
            )
            info = query.describe_database(conn)
            # A database can mix taskscope's runs (UTC) with Parsl's (local time).
            conventions = {run.timestamp_convention for run in runs.items} or {"utc"}
            label = (
                convention_label(conventions.pop())
                if len(conventions) == 1
                else "UTC for taskscope's runs, the host's local time for Parsl's"
            )
            return {
                "runs": runs,
                "names": query.workflow_names(conn),
                "convention": label,
                "has_tables": info.has_runs,
            }

        data = self.source.cached(("workflows", sort, order, page_no, name), load)
        runs = data["runs"]
        pages = max(1, math.ceil(runs.total / RUNS_PER_PAGE))

        def link(**changes: object) -> str:
            params = {
                "sort": sort,
                "order": order,
                "page": page_no,
                **({"name": name} if name else {}),
            }
            params.update(changes)
            return "?" + urlencode({k: v for k, v in params.items() if v is not None})

        context = {
            **data,
            "sort": sort,
            "order": order,
            "page_no": page_no,
            "pages": pages,
            "name": name,
            "link": link,
        }
        return self.respond(
            request,
            PageData(
                "workflows.html",
                context,
                sections=["runs_table"],
                title="Workflows",
                live=any(r.status == "running" for r in runs.items),
                crumbs=[("Workflows", None)],
            ),
        )

    # ---- workflow summary ------------------------------------------------------------
    def workflow(self, request: Request) -> Response:
        run_id = request.path_params["run_id"]
        part = choice_param(
            request, "part", ["apps", "durations", "states", "timeline", *self.workflow_parts], ""
        )
        if part == "timeline":
            return timeline_part(self, request, run_id)
        if part in self.workflow_parts:
            return self.workflow_parts[part](request, run_id)
        if part:
            return self._workflow_part(request, run_id, part)

        def load(conn: sqlite3.Connection) -> dict[str, Any]:
            summary = query.run_summary(conn, run_id, with_durations=False, with_counts=False)
            if summary is None:
                return {}
            return {"summary": summary}

        data = self.source.cached(("workflow", run_id), load)
        if not data:
            raise _not_found(f"There is no run {run_id!r} in this database.")
        summary = data["summary"]
        label = convention_label(summary.timestamp_convention)
        context = {
            **data,
            "run": summary.run,
            "convention": label,
            "last_activity": summary.last_activity,
        }
        figures: dict[str, dict[str, Any]] = {}  # the timeline is a deferred part (?part=timeline)
        return self.respond(
            request,
            PageData(
                "workflow.html",
                context,
                sections=["run_details"],
                figures=figures,
                live=summary.run.status == "running",
                title=summary.run.workflow_name or run_id,
                crumbs=self._run_crumbs(summary.run)[:1]
                + [(summary.run.workflow_name or run_id, None)],
            ),
        )

    def _workflow_part(self, request: Request, run_id: str, part: str) -> Response:
        def load(conn: sqlite3.Connection) -> dict[str, Any]:
            run = self._run(conn, run_id)
            if part == "apps":
                return {"run": run, "apps": query.app_summary(conn, run_id)}
            if part == "states":
                return {"run": run, "counts": query.state_counts(conn, run_id)}
            return {"run": run, "duration": query.duration_stats(conn, run_id)}

        answer = self.part_data(("workflow-part", run_id, part), load)
        return self.respond_answer(request, part, answer, {})

    def stream(self, request: Request) -> Response:
        return stream_page(self, request)

    # ---- DAG ---------------------------------------------------------------------------
    def dag(self, request: Request) -> Response:
        run_id = request.path_params["run_id"]
        colour = choice_param(request, "colour", ["app", "state"], "app")
        requested_view = choice_param(request, "view", ["auto", "apps", "tasks", "around"], "auto")
        app = text_param(request, "app")
        first = int_param(request, "first", 0, 0) if request.query_params.get("first") else None
        limit = int_param(request, "limit", DAG_TASK_LIMIT, 10, 20000)
        centre = int_param(request, "task", -1, -1) if request.query_params.get("task") else None
        depth = int_param(request, "depth", NEIGHBOURHOOD_DEPTH, 1, 50)
        if requested_view == "around" and (centre is None or centre < 0):
            requested_view = "auto"  # no task given: the usual view

        def load(conn: sqlite3.Connection) -> dict[str, Any]:
            run = self._run(conn, run_id)
            view = requested_view
            if view == "around" and centre is not None:  # (set above: "around" needs a task)
                graph = query.task_neighbourhood(
                    conn, run_id, centre, depth=depth, limit=min(limit, NEIGHBOURHOOD_LIMIT)
                )
                if graph is None:
                    raise _not_found(f"Run {run_id!r} has no task {centre}.")
                return {"run": run, "view": view, "graph": graph}
            if view == "auto":
                view = (
                    "tasks"
                    if run.task_count <= DAG_TASK_LIMIT or app or first is not None
                    else "apps"
                )
            if view == "apps":
                return {"run": run, "view": view, "graph": query.app_graph(conn, run_id)}
            graph = query.task_graph(conn, run_id, app=app, first_task=first, limit=limit)
            return {"run": run, "view": view, "graph": graph}

        key = ("dag", run_id, colour, requested_view, app, first, limit, centre, depth)
        data = self.source.cached(key, load)
        run, graph, view = data["run"], data["graph"], data["view"]
        if view == "apps":
            figure = plots.app_dag(graph, colour)
        else:
            figure = plots.task_dag(graph, colour, centre if view == "around" else None)
            if self.decorate_dag is not None:
                figure = self.decorate_dag(run_id, figure)
        apps = (
            sorted({n.app for n in graph.nodes}) if view != "apps" else [n.app for n in graph.nodes]
        )
        shown = len(graph.nodes)
        context = {
            "run": run,
            "graph": graph,
            "view": view,
            "colour": colour,
            "app": app,
            "first": first,
            "limit": limit,
            "shown": shown,
            "apps": apps,
            "centre": centre,
            "depth": depth,
            "quote": lambda s: quote(s, safe=""),
            "webgl": view != "apps" and shown > plots.WEBGL_ABOVE,
            # after the last task asked for (not its context), when a whole page was found
            "next_first": (max(n.task_id for n in graph.nodes[: graph.chosen]) + 1)
            if view == "tasks" and graph.chosen >= limit
            else None,
        }
        title = f"DAG by {colour}" if view != "around" else f"DAG around task {centre}"
        return self.respond(
            request,
            PageData(
                "dag.html",
                context,
                sections=["dag_info"],
                figures={"dag": figure} if graph.nodes else {},
                live=run.status == "running",
                title=title,
                crumbs=self._run_crumbs(run) + [(title, None)],
            ),
        )

    # ---- resources -----------------------------------------------------------------------
    def resources(self, request: Request) -> Response:
        run_id = request.path_params["run_id"]
        part = choice_param(request, "part", list(RESOURCE_PARTS), "")
        if part:
            return self._resources_part(request, run_id, part)

        def load(conn: sqlite3.Connection) -> dict[str, Any]:
            run = self._run(conn, run_id)
            return {
                "run": run,
                "capacity": query.capacity(conn, run_id),
                # presence only: the usage part counts them (a pass over the samples)
                "sample_count": int(has_resource_samples(conn, run_id)),
                "convention": convention_label(run.timestamp_convention),
            }

        data = self.source.cached(("resources", run_id), load)
        context = {**data, "parts": RESOURCE_PARTS}
        return self.respond(
            request,
            PageData(
                "resources.html",
                context,
                sections=["capacity"],
                live=data["run"].status == "running",
                title="Resource usage",
                crumbs=self._run_crumbs(data["run"]) + [("Resource usage", None)],
            ),
        )

    def _resources_part(self, request: Request, run_id: str, part: str) -> Response:
        def load(conn: sqlite3.Connection) -> dict[str, Any]:
            run = self._run(conn, run_id)
            data: dict[str, Any] = {
                "run": run,
                "convention": convention_label(run.timestamp_convention),
            }
            if part == "distributions":
                data["dists"] = query.app_distributions(conn, run_id)
            else:
                data["usage"] = query.run_usage(
                    conn, run_id, parts=RESOURCE_PARTS[part], fit_rollups=True
                )
            return data

        answer = self.part_data(("resources-part", run_id, part), load)
        if answer.value is None:
            return self.respond_answer(request, part, answer, {})
        data = answer.value
        figures = {}
        usage, label = data.get("usage"), data["convention"]
        if usage is not None and part == "usage_workers":
            figures["usage_workers"] = plots.usage_plot(usage, "workers", label)
        if usage is not None and part == "usage_samples" and usage.sample_count:
            for which in ("cpu", "memory"):
                figures[f"usage_{which}"] = plots.usage_plot(usage, which, label)
        dists = data.get("dists") or []
        for which in ("duration_s", "peak_memory_bytes", "cpu_time_s"):
            if any(getattr(d, which) is not None for d in dists):
                figures[f"dist_{which}"] = plots.distribution_plot(dists, which)
        return self.respond_answer(request, part, answer, figures)

    # ---- app -------------------------------------------------------------------------------
    def app(self, request: Request) -> Response:
        run_id, app = request.path_params["run_id"], request.path_params["app"]
        page_no = int_param(request, "page", 1, 1)
        state = text_param(request, "state", 40)
        sort = choice_param(request, "sort", list(query.TASK_SORTS), "task_id")
        order = choice_param(request, "order", ["asc", "desc"], "asc")

        if request.query_params.get("part") == "stats":
            return self._app_stats_part(request, run_id, app)

        def load(conn: sqlite3.Connection) -> dict[str, Any]:
            run = self._run(conn, run_id)
            tasks = query.list_tasks(
                conn,
                run_id,
                app=app,
                state=state,
                sort=sort,
                descending=order == "desc",
                limit=TASKS_PER_PAGE,
                offset=(page_no - 1) * TASKS_PER_PAGE,
            )
            if tasks.total == 0 and state is None:
                raise _not_found(f"Run {run_id!r} has no app {app!r}.")
            return {"run": run, "tasks": tasks}

        data = self.source.cached(("app", run_id, app, page_no, state, sort, order), load)
        tasks = data["tasks"]

        def link(**changes: object) -> str:
            params = {"page": page_no, "sort": sort, "order": order, "state": state}
            params.update(changes)
            return "?" + urlencode({k: v for k, v in params.items() if v is not None})

        context = {
            **data,
            "app": app,
            "page_no": page_no,
            "state": state,
            "sort": sort,
            "order": order,
            "link": link,
            "pages": max(1, math.ceil(tasks.total / TASKS_PER_PAGE)),
            "app_href": quote(app, safe=""),
        }
        return self.respond(
            request,
            PageData(
                "app.html",
                context,
                sections=["task_table"],
                live=data["run"].status == "running",
                title=f"App {app}",
                crumbs=self._run_crumbs(data["run"]) + [(f"app {app}", None)],
            ),
        )

    def _app_stats_part(self, request: Request, run_id: str, app: str) -> Response:
        def load(conn: sqlite3.Connection) -> dict[str, Any]:
            run = self._run(conn, run_id)
            return {"run": run, "stats": next(iter(query.app_summary(conn, run_id, app=app)), None)}

        answer = self.part_data(("app-stats", run_id, app), load)
        return self.respond_answer(request, "stats", answer, {})

    # ---- task ------------------------------------------------------------------------------
    def task(self, request: Request) -> Response:
        run_id = request.path_params["run_id"]
        task_id = request.path_params["task_id"]
        if task_id > SQLITE_MAX_INTEGER:  # no such row, and SQLite could not even bind it
            raise _not_found(f"Run {run_id!r} has no task {task_id}.")

        def load(conn: sqlite3.Connection) -> dict[str, Any]:
            run = self._run(conn, run_id)
            detail = query.task_detail(conn, run_id, task_id)
            if detail is None:
                raise _not_found(f"Run {run_id!r} has no task {task_id}.")
            return {
                "run": run,
                "task": detail,
                "launch_dir": run_extra.launch_dir(conn, run_id),
                "samples": query.resource_series(conn, run_id, task_id),
                "convention": convention_label(run.timestamp_convention),
            }

        data = self.source.cached(("task", run_id, task_id), load)
        detail, samples = data["task"], data["samples"]
        base = output_base(data["launch_dir"], data["run"].rundir)
        figures = {}
        if samples:
            figures = {
                "try_memory": plots.try_resource_plot(samples, "memory"),
                "try_cpu": plots.try_resource_plot(samples, "cpu"),
            }
        stdout, stderr = tails([detail.stdout, detail.stderr], base, allowed=self.show_files)
        context = {
            **data,
            "stdout": stdout,
            "stderr": stderr,
            "app_href": quote(detail.app, safe=""),
        }
        live = data["run"].status == "running" and not is_final(detail.state)
        return self.respond(
            request,
            PageData(
                "task.html",
                context,
                sections=["task_body"],
                figures=figures,
                live=live,
                title=f"Task {task_id}",
                crumbs=self._run_crumbs(data["run"])
                + [
                    (
                        f"app {detail.app}",
                        f"workflow/{quote(run_id, safe='')}/app/{quote(detail.app, safe='')}",
                    ),
                    (f"task {task_id}", None),
                ],
            ),
        )
