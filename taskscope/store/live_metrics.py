"""What a Prometheus scrape of the dashboard reports about live and recent runs.

Task counts by app and state come from the writer's state table
(`task_state.app_state_counts`), tries and failed tries are index counts, CPU and memory in use
read only the samples of the last `USAGE_WINDOW_S` seconds: bounded reads whatever the run's
size. Workers busy is the dashboard's rule (`worker_query.busy_now`: tries started and not
ended on their workers), never the kernel's task states, which can say `running` of more tasks
than there are workers; it reads the open tries through the per-try table's partial index
(``ix_try_run_open``), or the status history in a database without the table. A finished
run's figures never change, so the dashboard caches them until the database changes; a live
run is read on every scrape.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field

from taskscope.store import query
from taskscope.store.readonly import describe_database, written_by_taskscope
from taskscope.store.records import RunRow
from taskscope.store.states import FINAL_STATES_SQL
from taskscope.store.task_state import app_state_counts, state_source
from taskscope.store.timestamps import age_seconds, format_timestamp, now_in_convention
from taskscope.store.worker_query import busy_now

RECENT_RUNS = 5  # finished runs reported besides every running one
MAX_RUNNING_RUNS = 50
USAGE_WINDOW_S = 30.0
_CPU = "(COALESCE(psutil_process_time_user, 0) + COALESCE(psutil_process_time_system, 0))"


@dataclass
class RunMetrics:
    run: RunRow
    tasks: dict[tuple[str, str], int] = field(default_factory=dict)  # (app, state) -> tasks
    tries: int = 0
    failed_tries: int = 0
    workers_busy: int = 0
    workers_capacity: int | None = None
    cpu_cores: float | None = None  # in use now, summed over running tries
    memory_bytes: float | None = None  # resident, summed over running tries
    last_event: str | None = None  # the newest status timestamp (running runs)

    def last_event_age_s(self) -> float | None:
        """Seconds from the newest recorded event to now (running runs only)."""
        if self.run.status != "running":
            return None
        return age_seconds(self.last_event, self.run.timestamp_convention)

    def heartbeat_age_s(self) -> float | None:
        if self.run.status != "running" or not self.run.last_heartbeat:
            return None
        return age_seconds(self.run.last_heartbeat, self.run.timestamp_convention)


def runs_to_report(conn: sqlite3.Connection) -> list[RunRow]:
    """Every running run (up to MAX_RUNNING_RUNS) and the RECENT_RUNS latest others."""
    page = query.list_runs(conn, limit=MAX_RUNNING_RUNS + RECENT_RUNS, with_counts=False)
    running = [r for r in page.items if r.status == "running"][:MAX_RUNNING_RUNS]
    others = [r for r in page.items if r.status != "running"][:RECENT_RUNS]
    return running + others


def _failed_tries(conn: sqlite3.Connection, run_id: str, ours: bool) -> int:
    info = describe_database(conn)
    if ours and info.has("taskscope_try_failure"):
        return int(
            conn.execute(
                "SELECT COUNT(*) FROM taskscope_try_failure WHERE run_id = ?", (run_id,)
            ).fetchone()[0]
        )
    if not info.has("try"):
        return 0
    return int(
        conn.execute(
            "SELECT COUNT(*) FROM try WHERE run_id = ? AND task_fail_history IS NOT NULL "
            "AND task_fail_history != ''",
            (run_id,),
        ).fetchone()[0]
    )


def usage_now(conn: sqlite3.Connection, run_id: str) -> tuple[float, float] | None:
    """(CPU cores, resident bytes) of the tries still running, from their samples of the
    last USAGE_WINDOW_S seconds before the run's newest sample; None without samples."""
    info = describe_database(conn)
    if not (info.has("resource") and info.has("try")):
        return None
    newest = conn.execute(
        "SELECT MAX(timestamp) FROM resource WHERE run_id = ?", (run_id,)
    ).fetchone()[0]
    if newest is None:
        return None
    window = (
        "FROM resource r WHERE r.run_id = :run AND r.timestamp >= "
        "strftime('%Y-%m-%d %H:%M:%f', :newest, :back) AND EXISTS (SELECT 1 FROM try y "
        "WHERE y.run_id = r.run_id AND y.task_id = r.task_id AND y.try_id = r.try_id "
        "AND y.task_try_time_returned IS NULL)"
    )
    params = {"run": run_id, "newest": newest, "back": f"-{USAGE_WINDOW_S} seconds"}
    # SQLite's bare-column rule: with MAX(timestamp), the rss is the newest sample's.
    memory = conn.execute(
        "SELECT COALESCE(SUM(rss), 0) FROM (SELECT MAX(r.timestamp), "
        f"r.psutil_process_memory_resident AS rss {window} GROUP BY r.task_id, r.try_id)",
        params,
    ).fetchone()[0]
    cpu = conn.execute(
        "SELECT COALESCE(SUM(CASE WHEN span > 0 THEN used / span END), 0) FROM ("
        f"SELECT MAX({_CPU}) - MIN({_CPU}) AS used, (julianday(MAX(r.timestamp)) - "
        f"julianday(MIN(r.timestamp))) * 86400.0 AS span {window} GROUP BY r.task_id, r.try_id)",
        params,
    ).fetchone()[0]
    return float(cpu), float(memory)


def run_metrics(conn: sqlite3.Connection, run: RunRow) -> RunMetrics:
    info = describe_database(conn)
    metrics = RunMetrics(run)
    if not info.has("task"):
        return metrics
    ours = written_by_taskscope(conn, info, run.run_id)
    if info.has("status"):
        source = state_source(conn, info, run.run_id, run_tasks=run.task_count)
        for app, by_state in app_state_counts(conn, source).items():
            for state, count in by_state.items():
                metrics.tasks[(app, state)] = count
    if info.has("try"):
        metrics.tries = conn.execute(
            "SELECT COUNT(*) FROM try WHERE run_id = ?", (run.run_id,)
        ).fetchone()[0]
    metrics.failed_tries = _failed_tries(conn, run.run_id, ours)
    metrics.workers_capacity = query.capacity(conn, run.run_id).workers
    live = run.status == "running"
    if live:
        metrics.workers_busy = busy_now(conn, run.run_id)
        usage = usage_now(conn, run.run_id)
        metrics.cpu_cores, metrics.memory_bytes = usage or (None, None)
        if info.has("status"):
            metrics.last_event = conn.execute(
                "SELECT MAX(timestamp) FROM status WHERE run_id = ?", (run.run_id,)
            ).fetchone()[0]
    else:
        metrics.cpu_cores = metrics.memory_bytes = 0.0
    return metrics


def finish_rate(conn: sqlite3.Connection, run: RunRow, window_s: float = 60.0) -> float | None:
    """Tasks that reached a final state per second over the last `window_s` seconds (up to
    now for a running run, up to its newest event otherwise): a range read of the status
    index on (run_id, timestamp), whatever the run's size."""
    if not describe_database(conn).has("status"):
        return None
    newest = conn.execute(
        "SELECT MAX(timestamp) FROM status WHERE run_id = ?", (run.run_id,)
    ).fetchone()[0]
    if newest is None:
        return 0.0
    end = newest
    if run.status == "running":
        end = format_timestamp(now_in_convention(run.timestamp_convention))
    count = conn.execute(
        "SELECT COUNT(*) FROM status WHERE run_id = ? AND timestamp >= "
        f"strftime('%Y-%m-%d %H:%M:%f', ?, ?) AND task_status_name IN {FINAL_STATES_SQL}",
        (run.run_id, end, f"-{window_s} seconds"),
    ).fetchone()[0]
    return float(count) / window_s
