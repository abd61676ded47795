"""The read-only JSON data API under ``/api/`` (docs/api.md).

Data, not HTML: the query layer's records as JSON objects. The same bounds as the pages (a
page of tasks is at most `query.MAX_PAGE` rows; usage series at most 2,000 buckets) and the
same access token, since the API is mounted in the dashboard's own application. Every error is
a JSON object ``{"error": ..., "status": ...}``: an unknown run or task is 404, a malformed
parameter 400, a database that cannot be read right now 503.
"""

from __future__ import annotations

import dataclasses
import logging
import sqlite3
from typing import Any
from urllib.parse import urlencode

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from taskscope.store import query
from taskscope.store.readonly import DatabaseNotFound
from taskscope.store.records import Page, RunRow, RunSummary, TaskDetail
from taskscope.store.states import LIFECYCLE_ORDER
from taskscope.visualize.source import DatabaseSource

API_VERSION = 1
DEFAULT_LIMIT = 100
SQLITE_MAX_INTEGER = 2**63 - 1
log = logging.getLogger(__name__)


def _json(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _json(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): _json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json(v) for v in value]
    if isinstance(value, float) and value != value:  # NaN is not JSON
        return None
    return value


def respond(data: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(_json(data), status_code=status)


def _bad_request(detail: str) -> HTTPException:
    return HTTPException(status_code=400, detail=detail)


def _not_found(detail: str) -> HTTPException:
    return HTTPException(status_code=404, detail=detail)


def _int(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise _bad_request(f"{name} must be a whole number, not {raw!r}") from None
    if not low <= value <= high:
        raise _bad_request(f"{name} must be between {low} and {high}, not {value}")
    return value


def _choice(
    request: Request, name: str, choices: tuple[str, ...], default: str | None
) -> str | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    if raw not in choices:
        raise _bad_request(f"{name} must be one of {', '.join(choices)}; not {raw!r}")
    return raw


def _page(request: Request, page: Page[Any], key: str) -> dict[str, Any]:
    """A page of records with the relative links to its neighbours (None at either end)."""

    def link(offset: int) -> str:
        params = dict(request.query_params)
        params.update({"offset": str(offset), "limit": str(page.limit)})
        return "?" + urlencode(params)

    return {
        key: page.items,
        "total": page.total,
        "limit": page.limit,
        "offset": page.offset,
        "next": link(page.offset + page.limit) if page.has_next else None,
        "previous": link(max(0, page.offset - page.limit)) if page.has_previous else None,
    }


class Api:
    def __init__(self, source: DatabaseSource) -> None:
        self.source = source

    def _run(self, conn: sqlite3.Connection, run_id: str) -> RunRow:
        run = query.get_run(conn, run_id, with_counts=False)
        if run is None:
            raise _not_found(f"there is no run {run_id!r} in this database")
        return run

    def index(self, request: Request) -> Response:
        return respond(
            {
                "api_version": API_VERSION,
                "endpoints": {
                    "runs": "runs?limit=&offset=&workflow=",
                    "run": "runs/{run_id}",
                    "apps": "runs/{run_id}/apps",
                    "tasks": "runs/{run_id}/tasks?app=&state=&sort=&order=&limit=&offset=",
                    "task": "runs/{run_id}/tasks/{task_id}",
                    "task_resources": "runs/{run_id}/tasks/{task_id}/resources",
                    "usage": "runs/{run_id}/usage?buckets=",
                },
            }
        )

    def runs(self, request: Request) -> Response:
        limit = _int(request, "limit", 50, 1, query.MAX_PAGE)
        offset = _int(request, "offset", 0, 0, SQLITE_MAX_INTEGER)
        workflow = request.query_params.get("workflow") or None
        page = self.source.cached(
            ("api-runs", limit, offset, workflow),
            lambda conn: query.list_runs(conn, limit=limit, offset=offset, workflow_name=workflow),
        )
        return respond(_page(request, page, "runs"))

    def run(self, request: Request) -> Response:
        run_id = request.path_params["run_id"]

        def load(conn: sqlite3.Connection) -> RunSummary | None:
            return query.run_summary(conn, run_id)

        summary = self.source.cached(("api-run", run_id), load)
        if summary is None:
            raise _not_found(f"there is no run {run_id!r} in this database")
        return respond(summary)

    def apps(self, request: Request) -> Response:
        run_id = request.path_params["run_id"]

        def load(conn: sqlite3.Connection) -> list[Any]:
            self._run(conn, run_id)
            return query.app_summary(conn, run_id)

        return respond({"run_id": run_id, "apps": self.source.cached(("api-apps", run_id), load)})

    def tasks(self, request: Request) -> Response:
        run_id = request.path_params["run_id"]
        limit = _int(request, "limit", DEFAULT_LIMIT, 1, query.MAX_PAGE)
        offset = _int(request, "offset", 0, 0, SQLITE_MAX_INTEGER)
        state = _choice(request, "state", LIFECYCLE_ORDER, None)
        sort = _choice(request, "sort", tuple(query.TASK_SORTS), "task_id") or "task_id"
        order = _choice(request, "order", ("asc", "desc"), "asc")
        app = request.query_params.get("app") or None

        def load(conn: sqlite3.Connection) -> Page[Any]:
            self._run(conn, run_id)
            return query.list_tasks(
                conn,
                run_id,
                app=app,
                state=state,
                sort=sort,
                descending=order == "desc",
                limit=limit,
                offset=offset,
            )

        page = self.source.cached(
            ("api-tasks", run_id, app, state, sort, order, limit, offset), load
        )
        return respond({"run_id": run_id, **_page(request, page, "tasks")})

    def _task_id(self, request: Request) -> int:
        task_id = int(request.path_params["task_id"])
        if task_id > SQLITE_MAX_INTEGER:  # no such row, and SQLite could not even bind it
            raise _not_found(f"run {request.path_params['run_id']!r} has no task {task_id}")
        return task_id

    def task(self, request: Request) -> Response:
        run_id, task_id = request.path_params["run_id"], self._task_id(request)

        def load(conn: sqlite3.Connection) -> TaskDetail:
            self._run(conn, run_id)
            detail = query.task_detail(conn, run_id, task_id)
            if detail is None:
                raise _not_found(f"run {run_id!r} has no task {task_id}")
            return detail

        return respond(self.source.cached(("api-task", run_id, task_id), load))

    def task_resources(self, request: Request) -> Response:
        run_id, task_id = request.path_params["run_id"], self._task_id(request)

        def load(conn: sqlite3.Connection) -> list[Any]:
            self._run(conn, run_id)
            if query.task_detail(conn, run_id, task_id) is None:
                raise _not_found(f"run {run_id!r} has no task {task_id}")
            return query.resource_series(conn, run_id, task_id)

        samples = self.source.cached(("api-task-resources", run_id, task_id), load)
        return respond({"run_id": run_id, "task_id": task_id, "samples": samples})

    def usage(self, request: Request) -> Response:
        run_id = request.path_params["run_id"]
        buckets = _int(request, "buckets", 200, 1, 2000)
        # Without `buckets`, no finer than the writer's rollups resolve (whole minutes on a
        # long run), as the dashboard asks: the series then come from the rollups, not from
        # a sample of tries. An explicit count is kept.
        fit = not request.query_params.get("buckets")

        def load(conn: sqlite3.Connection) -> Any:
            self._run(conn, run_id)
            return query.run_usage(conn, run_id, buckets=buckets, fit_rollups=fit)

        usage = self.source.cached(("api-usage", run_id, buckets, fit), load)
        return respond({"run_id": run_id, "usage": usage})


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    detail = exc.detail
    if exc.status_code == 404 and detail == "Not Found":
        detail = f"there is no API endpoint at {request.url.path} (see /api/)"
    elif exc.status_code == 405:
        detail = "the API is read-only: use GET"
    return JSONResponse(
        {"error": str(detail), "status": exc.status_code}, status_code=exc.status_code
    )


async def _database_error(request: Request, exc: Exception) -> Response:
    log.warning("database error on %s: %s", request.url.path, exc)
    return JSONResponse(
        {"error": f"the monitoring database could not be read right now ({exc})", "status": 503},
        status_code=503,
    )


def create_api(source: DatabaseSource) -> Starlette:
    """The API as an application of its own, mounted at /api by the dashboard (so it shares
    the dashboard's middleware, the access token among them)."""
    api = Api(source)
    routes = [
        Route("/", api.index),
        Route("/runs", api.runs),
        Route("/runs/{run_id}", api.run),
        Route("/runs/{run_id}/apps", api.apps),
        Route("/runs/{run_id}/tasks", api.tasks),
        Route("/runs/{run_id}/tasks/{task_id:int}", api.task),
        Route("/runs/{run_id}/tasks/{task_id:int}/resources", api.task_resources),
        Route("/runs/{run_id}/usage", api.usage),
    ]
    handlers = {
        HTTPException: _http_error,
        sqlite3.Error: _database_error,
        DatabaseNotFound: _database_error,
    }
    return Starlette(routes=routes, exception_handlers=handlers)
