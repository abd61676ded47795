"""One run's analysis in one document, for `taskscope analyze`, the dashboard and JSON."""

from __future__ import annotations

import dataclasses
import sqlite3
from dataclasses import dataclass
from typing import Any

from taskscope.store.analysis.context import RunContext, run_context
from taskscope.store.analysis.critical_path import CriticalPath, critical_path
from taskscope.store.analysis.failures import FailureGroup, failure_groups
from taskscope.store.analysis.hosts import HostHealth, host_health
from taskscope.store.analysis.stragglers import Straggler, cohorts, stragglers


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


def analyze(conn: sqlite3.Connection, run_id: str, *, read_files: bool = True) -> RunAnalysis:
    """Every analysis of one run (raises `RunNotFound` for a run that is not there)."""
    ctx: RunContext = run_context(conn, run_id)
    return RunAnalysis(
        run_id=run_id,
        workflow_name=ctx.run.workflow_name,
        status=ctx.run.status,
        timestamp_convention=ctx.run.timestamp_convention,
        failures=failure_groups(ctx, read_files=read_files),
        critical_path=critical_path(ctx),
        stragglers=stragglers(ctx, cohorts(ctx)),
        hosts=host_health(ctx),
    )


def as_json(analysis: RunAnalysis) -> dict[str, Any]:
    """The analysis as plain JSON-ready data (dataclasses become objects)."""
    return dataclasses.asdict(analysis)
