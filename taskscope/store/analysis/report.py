"""One run's analysis in one document, for `taskscope analyze`, the dashboard and JSON."""

from __future__ import annotations

import dataclasses
import math
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from taskscope.store.analysis.advice import Advice
from taskscope.store.analysis.context import RunContext, run_context
from taskscope.store.analysis.critical_path import CriticalPath, critical_path
from taskscope.store.analysis.efficiency import AppEfficiency, app_efficiency
from taskscope.store.analysis.failures import FailureGroup, failure_groups
from taskscope.store.analysis.forecast import Forecast, forecast, record_forecast
from taskscope.store.analysis.hosts import HostHealth, host_health
from taskscope.store.analysis.stragglers import Straggler, cohorts, stragglers
from taskscope.store.database import open_side_writer
from taskscope.store.errors import StoreError


@dataclass
class RunAnalysis:
    run_id: str
    workflow_name: str | None
    status: str
    timestamp_convention: str  # "utc" (taskscope) or "local" (Parsl): how times are written
    failures: list[FailureGroup]
    critical_path: CriticalPath
    stragglers: list[Straggler]
    hosts: list[HostHealth]
    apps: list[AppEfficiency]
    advice: list[Advice]
    forecast: Forecast


def analyze(conn: sqlite3.Connection, run_id: str, *, read_files: bool = True) -> RunAnalysis:
    """Every analysis of one run (raises `RunNotFound` for a run that is not there)."""
    ctx: RunContext = run_context(conn, run_id)
    # The critical path first: the failure groups reuse the dependency lists its floor reads.
    path = critical_path(ctx)
    groups = failure_groups(ctx, read_files=read_files)
    wait_share = None
    if path.makespan_s:
        wait_share = path.totals.get("worker_wait_s", 0.0) / path.makespan_s
    efficiency = app_efficiency(ctx, groups, wait_share)
    return RunAnalysis(
        run_id=run_id,
        workflow_name=ctx.run.workflow_name,
        status=ctx.run.status,
        timestamp_convention=ctx.run.timestamp_convention,
        failures=groups,
        critical_path=path,
        stragglers=stragglers(ctx, cohorts(ctx)),
        hosts=host_health(ctx),
        apps=efficiency.apps,
        advice=efficiency.advice,
        forecast=forecast(ctx),
    )


def keep_forecast(path: Path | str, analysis: RunAnalysis) -> bool:
    """Store a live run's forecast in its database (taskscope's databases only), so the run's
    end can say how far off it was. A database that cannot take the write is left alone."""
    if not analysis.forecast.live or analysis.timestamp_convention != "utc":
        return False
    try:
        conn = open_side_writer(path)
    except StoreError:
        return False
    try:
        return record_forecast(conn, analysis.run_id, analysis.forecast)
    except sqlite3.Error:
        return False  # the run's writer held the lock too long: the next forecast will do
    finally:
        conn.close()


def _plain(value: Any) -> Any:
    """JSON-ready data: dataclasses become dicts, infinities and NaN become null. Lists of
    numbers or strings (a group's task ids: up to one per task) are copied as they are,
    not one element at a time as `dataclasses.asdict` does."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        if all(type(v) in (int, str) for v in value):
            return list(value)
        return [_plain(v) for v in value]
    return value


def as_json(analysis: RunAnalysis) -> dict[str, Any]:
    """The analysis as plain JSON-ready data (dataclasses become objects); each advice also
    carries its sentence as `text`."""
    document: dict[str, Any] = _plain(analysis)
    document["advice"] = [{**_plain(a), "text": a.text} for a in analysis.advice]
    for app, entry in zip(analysis.apps, document["apps"], strict=True):
        entry["advice"] = [{**_plain(a), "text": a.text} for a in app.advice]
    return document
