"""The Starlette application: routes, templates, static files and the error pages."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path
from urllib.parse import quote

import plotly
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from taskscope.store.readonly import DatabaseNotFound
from taskscope.store.states import FINAL_ORDER, LIFECYCLE_ORDER
from taskscope.version import taskscope_version
from taskscope.visualize.analysis_view import AnalysisViews
from taskscope.visualize.api import create_api
from taskscope.visualize.colors import (
    STATE_COLORS,
    run_status_chip_color,
    run_status_color,
    run_status_label,
    state_color,
)
from taskscope.visualize.metrics import metrics_endpoint
from taskscope.visualize.pages import Pages
from taskscope.visualize.params import relative_root
from taskscope.visualize.plots import fmt_seconds
from taskscope.visualize.source import DatabaseSource
from taskscope.visualize.textclip import clip
from taskscope.visualize.token import LoopbackHostGate, TokenGate

HERE = Path(__file__).parent
PLOTLY_JS = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
log = logging.getLogger(__name__)


def fmt_bytes(value: float | None) -> str:
    if value is None:
        return "—"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{value:,.0f} {unit}" if unit == "B" else f"{value:,.1f} {unit}"
        value /= 1024
    return str(value)


def fmt_number(value: float | None, digits: int = 0) -> str:
    if value is None:
        return "—"
    return f"{value:,.{digits}f}"


def make_templates() -> Jinja2Templates:
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    env = templates.env
    env.finalize = clip  # no database value makes a page huge (visualize/textclip.py)
    env.filters.update(
        seconds=fmt_seconds,
        bytes=fmt_bytes,
        number=fmt_number,
        seg=lambda s: quote(str(s), safe=""),
    )
    env.globals.update(
        state_color=state_color,
        run_status_color=run_status_color,
        run_status_chip_color=run_status_chip_color,
        run_status_label=run_status_label,
        state_colors=STATE_COLORS,
        version=taskscope_version(),
        lifecycle_order=LIFECYCLE_ORDER,
        final_order=FINAL_ORDER,
    )
    return templates


def create_app(
    database: Path | str,
    debug: bool = False,
    show_files: bool = True,
    token: str | None = None,
    loopback_hosts_only: bool = False,
    compile_templates: bool = False,
) -> Starlette:
    """The dashboard over one monitoring database (opened read-only on every request).

    `show_files`: whether task pages show the last lines of the stdout/stderr files the
    database names (the CLI turns it off when listening on a non-loopback address).
    `token`: every request must carry it (`visualize/token.py`); None serves anyone (tests;
    the CLI's --no-token). `loopback_hosts_only`: refuse requests naming another host (the
    CLI sets it on loopback addresses, against DNS rebinding). `compile_templates`: compile
    every template now (the CLI does, before it listens) rather than on the first request
    that renders it, which on a fresh server was most of a fast page's time (~50-100 ms)."""
    source = DatabaseSource(database)
    templates = make_templates()
    pages = Pages(source, templates, show_files=show_files)
    analysis = AnalysisViews(source, pages)
    pages.workflow_parts["analysis"] = analysis.workflow_part
    pages.decorate_dag, pages.decorate_gantt = analysis.decorate_dag, analysis.decorate_gantt
    if compile_templates:  # after the views have added their filters
        for name in templates.env.list_templates(extensions=["html"]):
            templates.env.get_template(name)

    def error_page(request: Request, status: int, heading: str, detail: str) -> Response:
        context = {
            "root": relative_root(request.url.path),
            "title": heading,
            "heading": heading,
            "detail": detail,
            "crumbs": [("Workflows", "")],
            "live": False,
            "figures": {},
            "status": status,
            "database": str(source.path),
        }
        return templates.TemplateResponse(request, "error.html", context, status_code=status)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        heading = {404: "Not found", 400: "Bad request"}.get(exc.status_code, "Error")
        detail = (
            exc.detail
            if exc.status_code != 404 or exc.detail != "Not Found"
            else (f"There is no page at {request.url.path}.")
        )
        return error_page(request, exc.status_code, heading, str(detail))

    async def database_error(request: Request, exc: Exception) -> Response:
        log.warning("database error on %s: %s", request.url.path, exc)
        return error_page(
            request,
            503,
            "Database unavailable",
            f"The monitoring database could not be read right now ({exc}). "
            "If a workflow is writing it, reload in a moment.",
        )

    async def plotly_js(request: Request) -> Response:
        return FileResponse(
            PLOTLY_JS, media_type="text/javascript", headers={"Cache-Control": "max-age=86400"}
        )

    routes = [
        Route("/", pages.workflows),
        Route("/workflow/{run_id}/", pages.workflow),
        Route("/workflow/{run_id}/dag", pages.dag),
        Route("/workflow/{run_id}/stream", pages.stream),
        Route("/workflow/{run_id}/resources", pages.resources),
        Route("/workflow/{run_id}/analysis", analysis.page),
        Route("/workflow/{run_id}/diff", analysis.diff),
        Route("/workflow/{run_id}/app/{app}", pages.app),
        Route("/workflow/{run_id}/task/{task_id:int}", pages.task),
        # Data for other tools (docs/api.md, docs/exports.md), behind the same middleware.
        Route("/metrics", metrics_endpoint(source)),
        Mount("/api", create_api(source)),
        Route("/static/plotly.min.js", plotly_js),
        Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"),
    ]
    handlers = {
        HTTPException: http_error,
        sqlite3.Error: database_error,
        DatabaseNotFound: database_error,
    }
    middleware = [Middleware(LoopbackHostGate)] if loopback_hosts_only else []
    if token is not None:
        middleware.append(Middleware(TokenGate, token=token))
    return Starlette(debug=debug, routes=routes, exception_handlers=handlers, middleware=middleware)
