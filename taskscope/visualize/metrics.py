"""``/metrics``: Prometheus text exposition (version 0.0.4) of live and recent runs.

Scrape it with the dashboard's token (``authorization: {type: token, credentials: ...}`` in
the scrape config); see docs/exports.md. Finished runs' figures are cached until the database
file changes; live runs are read on each scrape (bounded reads, `store/live_metrics.py`).
"""

from __future__ import annotations

import functools
import sqlite3
import time
from collections.abc import Callable, Iterable

from starlette.requests import Request
from starlette.responses import Response

from taskscope.store.live_metrics import RunMetrics, run_metrics, runs_to_report
from taskscope.store.records import RunRow
from taskscope.visualize.source import DatabaseSource

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _escape(value: object) -> str:
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(**labels: object) -> str:
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items()) + "}"


def _number(value: float) -> str:
    return repr(float(value)) if isinstance(value, float) else str(int(value))


class Exposition:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def family(
        self,
        name: str,
        kind: str,
        help_text: str,
        samples: Iterable[tuple[dict[str, object], float | None]],
    ) -> None:
        rows = [(labels, value) for labels, value in samples if value is not None]
        # Text format 0.0.4 names a counter with its _total suffix in HELP and TYPE too.
        sample_name = f"{name}_total" if kind == "counter" else name
        self.lines.append(f"# HELP {sample_name} {help_text}")
        self.lines.append(f"# TYPE {sample_name} {kind}")
        for labels, value in rows:
            self.lines.append(f"{sample_name}{_labels(**labels)} {_number(value)}")

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def render(metrics: list[RunMetrics], unwritten: int | None, seconds: float) -> str:
    out = Exposition()

    def per_run(
        get: Callable[[RunMetrics], float | None],
    ) -> list[tuple[dict[str, object], float | None]]:
        return [({"run": m.run.run_id}, get(m)) for m in metrics]

    out.family(
        "taskscope_run_info",
        "gauge",
        "1 for each run reported (every running run and the latest finished ones).",
        [
            (
                {
                    "run": m.run.run_id,
                    "workflow": m.run.workflow_name or "",
                    "status": m.run.status,
                },
                1,
            )
            for m in metrics
        ],
    )
    out.family(
        "taskscope_run_running",
        "gauge",
        "1 while the run is running, else 0.",
        per_run(lambda m: int(m.run.status == "running")),
    )
    out.family(
        "taskscope_tasks",
        "gauge",
        "Tasks of a run by app and current state.",
        [
            ({"run": m.run.run_id, "app": app, "state": state}, n)
            for m in metrics
            for (app, state), n in sorted(m.tasks.items())
        ],
    )
    out.family(
        "taskscope_tries",
        "counter",
        "Tries of a run's tasks (retries included).",
        per_run(lambda m: m.tries),
    )
    out.family(
        "taskscope_failed_tries", "counter", "Tries that failed.", per_run(lambda m: m.failed_tries)
    )
    out.family(
        "taskscope_workers_busy",
        "gauge",
        "Tasks running now (0 once the run ended).",
        per_run(lambda m: m.workers_busy),
    )
    out.family(
        "taskscope_workers_capacity",
        "gauge",
        "Workers the run's pools provide.",
        per_run(lambda m: m.workers_capacity),
    )
    out.family(
        "taskscope_cpu_cores_in_use",
        "gauge",
        "CPU cores used by the running tries over the last 30 s of samples.",
        per_run(lambda m: m.cpu_cores),
    )
    out.family(
        "taskscope_memory_resident_bytes",
        "gauge",
        "Resident memory of the running tries (their newest samples).",
        per_run(lambda m: m.memory_bytes),
    )
    out.family(
        "taskscope_last_event_age_seconds",
        "gauge",
        "Seconds since the newest task event in the database of a running run: how "
        "far the written record trails now (the writer's lag, or an idle workflow).",
        per_run(lambda m: m.last_event_age_s),
    )
    out.family(
        "taskscope_heartbeat_age_seconds",
        "gauge",
        "Seconds since a running run's last heartbeat reached the database.",
        per_run(lambda m: m.heartbeat_age_s),
    )
    if unwritten is not None:
        out.family(
            "taskscope_unwritten_events",
            "gauge",
            "Monitoring events in the durable spool not yet written to the database.",
            [({}, unwritten)],
        )
    out.family(
        "taskscope_scrape_seconds",
        "gauge",
        "Seconds this scrape took to read.",
        [({}, round(seconds, 6))],
    )
    return out.text()


def _finished(run: RunRow, conn: sqlite3.Connection) -> RunMetrics:
    return run_metrics(conn, run)


def metrics_endpoint(source: DatabaseSource) -> Callable[[Request], Response]:
    def metrics(request: Request) -> Response:
        started = time.perf_counter()

        def load(conn: sqlite3.Connection) -> list[RunMetrics]:
            result = []
            for run in runs_to_report(conn):
                if run.status == "running":
                    result.append(run_metrics(conn, run))
                else:  # a finished run: cached until the database file changes
                    result.append(
                        source.cached(
                            ("metrics", run.run_id, run.status), functools.partial(_finished, run)
                        )
                    )
            return result

        collected = source.read(load)
        text = render(collected, None, time.perf_counter() - started)
        return Response(text, media_type=CONTENT_TYPE, headers={"Cache-Control": "no-store"})

    return metrics
