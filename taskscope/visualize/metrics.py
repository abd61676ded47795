"""``/metrics``: Prometheus text exposition (version 0.0.4) of live and recent runs.

Scrape it with the dashboard's token (``authorization: {type: token, credentials: ...}`` in
the scrape config); see docs/exports.md. The figures (`store/live_metrics.py`) are read in the
background at most every `MAX_AGE_S` seconds (`Snapshot`), so a scrape costs the same at any
run size.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable

from starlette.requests import Request
from starlette.responses import Response

from taskscope.store.live_metrics import RunMetrics, run_metrics, runs_to_report
from taskscope.store.readonly import DatabaseNotFound
from taskscope.store.spool import SpoolState, unwritten
from taskscope.visualize.source import DatabaseSource

log = logging.getLogger(__name__)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _escape(value: object) -> str:
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(**labels: object) -> str:
    if not labels:
        return ""
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


def render(
    metrics: list[RunMetrics],
    unwritten: int | None,
    seconds: float,
    age_s: float = 0.0,
    catching_up: bool = False,
) -> str:
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
        per_run(lambda m: m.last_event_age_s()),
    )
    out.family(
        "taskscope_heartbeat_age_seconds",
        "gauge",
        "Seconds since a running run's last heartbeat reached the database.",
        per_run(lambda m: m.heartbeat_age_s()),
    )
    if unwritten is not None:
        out.family(
            "taskscope_unwritten_events",
            "gauge",
            "Monitoring events in the durable spool beside the database that are not written "
            "to it yet (a writer catching up, or a killed run: `taskscope recover`).",
            [({}, unwritten)],
        )
        out.family(
            "taskscope_writer_catching_up",
            "gauge",
            "1 while a running writer still owns unwritten events, else 0.",
            [({}, int(catching_up))],
        )
    out.family(
        "taskscope_metrics_age_seconds",
        "gauge",
        "Seconds since these figures were read from the database (at most a few seconds: "
        "the database is read in the background, at most every 5 s).",
        [({}, round(age_s, 3))],
    )
    out.family(
        "taskscope_scrape_seconds",
        "gauge",
        "Seconds this scrape took.",
        [({}, round(seconds, 6))],
    )
    return out.text()


MAX_AGE_S = 5.0


class Snapshot:
    """The figures of the latest read, refreshed in the background (stale while revalidate).

    A scrape renders the latest snapshot and, when it is older than `MAX_AGE_S` and the
    database has changed since, starts one background read for the next scrape. So a scrape
    costs the rendering of a few hundred lines whatever the runs' size (counting 10^6 tasks by
    app and state takes about a second on 2 loaded cores), and the database is read at most
    once per `MAX_AGE_S` however often it is scraped. Only the first scrape waits for a read.
    `taskscope_metrics_age_seconds` tells how old the figures are."""

    def __init__(self, source: DatabaseSource, max_age_s: float | None = None) -> None:
        self.source = source
        self.max_age_s = MAX_AGE_S if max_age_s is None else max_age_s
        self.lock = threading.Lock()
        self.runs: list[RunMetrics] | None = None
        self.read_at = 0.0  # time.monotonic() of the read
        self.signature: tuple[object, ...] = ()
        self.refreshing = False
        self.spool: SpoolState | None = None

    def _read(self) -> tuple[list[RunMetrics], tuple[object, ...]]:
        signature = self.source.signature()

        def load(conn: sqlite3.Connection) -> list[RunMetrics]:
            return [run_metrics(conn, run) for run in runs_to_report(conn)]

        runs = self.source.read(load)
        # Events the writer has not written yet (the durable spool beside the database).
        state = self.source.read(lambda conn: unwritten(self.source.path, conn))
        self.spool = state
        return runs, signature

    def _refresh(self) -> None:
        try:
            runs, signature = self._read()
        except (sqlite3.Error, DatabaseNotFound) as exc:
            log.warning("metrics: the database could not be read: %s", exc)
            with self.lock:
                self.refreshing = False
            return
        with self.lock:
            self.runs, self.signature, self.read_at = runs, signature, time.monotonic()
            self.refreshing = False

    def get(self) -> tuple[list[RunMetrics], float]:
        """The runs' figures and their age in seconds."""
        with self.lock:
            runs, read_at = self.runs, self.read_at
        if runs is None:  # the first scrape reads the database itself
            fresh, signature = self._read()
            with self.lock:
                self.runs, self.signature, self.read_at = fresh, signature, time.monotonic()
            return fresh, 0.0
        age = time.monotonic() - read_at
        if age >= self.max_age_s:
            with self.lock:
                # A running run turns lost when its heartbeat stops, with no change to the
                # database: with one in the figures, read again whatever the signature says.
                live = any(m.run.status == "running" for m in runs)
                changed = live or self.source.signature() != self.signature
                start = not self.refreshing and changed
                if start:
                    self.refreshing = True
                elif not self.refreshing:
                    self.read_at = time.monotonic()  # unchanged database: still current
                    age = 0.0
            if start:
                threading.Thread(
                    target=self._refresh, name="taskscope-metrics", daemon=True
                ).start()
        return runs, age


def metrics_endpoint(source: DatabaseSource) -> Callable[[Request], Response]:
    snapshot = Snapshot(source)

    def metrics(request: Request) -> Response:
        started = time.perf_counter()
        runs, age = snapshot.get()
        spool = snapshot.spool
        text = render(
            runs,
            spool.events if spool else 0,
            time.perf_counter() - started,
            age,
            catching_up=bool(spool and spool.live),
        )
        return Response(text, media_type=CONTENT_TYPE, headers={"Cache-Control": "no-store"})

    return metrics
