"""Synthetic taskscope monitoring databases, for tests and benchmarks of the read side.

They are written with the real DDL (`taskscope.store.schema`), in UTC, and shaped like a real
run: a layered DAG (generate -> transform -> combine -> summarize, plus a join app), retried
tries, failures with their exception recorded, dependency failures, resource samples and a
worker pool in the node table. A run can be completed, failed, still running (fresh heartbeat),
lost (stale heartbeat) or aborted.
"""

from __future__ import annotations

import random
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from taskscope.store.graph_query import APP_EDGE_TABLE
from taskscope.store.rollup_rebuild import rebuild_rollups
from taskscope.store.schema import (
    INDEXES,
    PARSL_TABLES,
    SCHEMA_VERSION,
    TASKSCOPE_TABLES,
    TIMESTAMP_CONVENTION,
)
from taskscope.store.states import is_failed
from taskscope.store.task_state import STATE_TABLE

APPS = ("generate", "transform", "combine", "summarize")


@dataclass
class SyntheticRun:
    run_id: str
    tasks: int = 200
    status: str = "completed"  # completed | failed | running | lost | aborted
    workflow_name: str = "synthetic"
    with_resources: bool = True
    retry_fraction: float = 0.1
    fail_fraction: float = 0.02
    samples_per_try: int = 2
    task_seconds: float = 2.0
    workers: int = 4
    hosts: int = 1
    began: datetime | None = None  # UTC; default: long enough ago for the run to be over
    seed: int = 1
    stdout_dir: Path | None = None  # when given, bash-like tasks get stdout/stderr files here
    # Seconds between the run's heartbeats. A running run's database is written once, so its
    # one heartbeat must stay fresh for as long as a reader is to see it alive: readers call a
    # run lost after three intervals without one.
    heartbeat_interval: float = 5.0


def _ts(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S.%f")


def _utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def _app_of(task_id: int, total: int) -> str:
    if task_id == total - 1 and total > 3:
        return "join_all"
    layer = task_id % 10
    return APPS[0] if layer < 4 else APPS[1] if layer < 7 else APPS[2] if layer < 9 else APPS[3]


def _depends(task_id: int, app: str) -> list[int]:
    block = task_id - task_id % 10
    if app == "transform":
        return [block + (task_id % 10) - 4]
    if app == "combine":
        return [block + 4, block + 5] if task_id % 10 == 7 else [block + 5, block + 6]
    if app == "summarize":
        return [block + 7, block + 8]
    return []


class _Writer:
    """Accumulates rows and flushes them in large executemany batches."""

    BATCH = 50_000

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.rows: dict[str, list[tuple[Any, ...]]] = {}
        self.sql = {
            "task": "INSERT INTO task VALUES (" + ",".join("?" * 15) + ")",
            "try": "INSERT INTO try VALUES (" + ",".join("?" * 11) + ")",
            "status": "INSERT OR IGNORE INTO status VALUES (?,?,?,?,?)",
            "resource": "INSERT OR IGNORE INTO resource VALUES (" + ",".join("?" * 18) + ")",
            "failure": "INSERT INTO taskscope_try_failure VALUES (?,?,?,?,?,?,?)",
            "state": f"INSERT INTO {STATE_TABLE} VALUES (?,?,?,?,?)",
            "app_edge": f"INSERT INTO {APP_EDGE_TABLE} VALUES (?,?,?,?,?)",
        }

    def add(self, table: str, row: tuple[Any, ...]) -> None:
        batch = self.rows.setdefault(table, [])
        batch.append(row)
        if len(batch) >= self.BATCH:
            self.flush(table)

    def flush(self, table: str | None = None) -> None:
        for name in [table] if table else list(self.rows):
            if self.rows.get(name):
                self.conn.executemany(self.sql[name], self.rows[name])
                self.rows[name] = []


def _write_run(conn: sqlite3.Connection, run: SyntheticRun, task_state: bool) -> None:
    rng = random.Random(run.seed)
    now = _utcnow()
    slots = max(1, run.workers * run.hosts)
    makespan = (run.tasks / slots + 2) * run.task_seconds
    unfinished_run = run.status in ("running", "lost", "aborted")
    if run.began is not None:
        began = run.began
    elif run.status == "running":
        began = now - timedelta(seconds=makespan * 0.7)
    elif run.status == "lost":
        began = now - timedelta(seconds=makespan * 0.7 + 7200)
    else:
        began = now - timedelta(seconds=makespan + 3600)
    cutoff = began + timedelta(seconds=makespan * 0.7) if unfinished_run else None
    writer = _Writer(conn)
    failed_ids: set[int] = set()
    # (source app, target app, kind) -> edges, as taskscope's writer counts them.
    app_edges: dict[tuple[str, str, str], int] = {}
    completed = failed = 0
    last_event = began
    for task_id in range(run.tasks):
        app = _app_of(task_id, run.tasks)
        deps = list(range(max(0, task_id - 5), task_id)) if app == "join_all" else []
        deps = deps if app == "join_all" else _depends(task_id, app)
        invoked = began + timedelta(seconds=0.5 + task_id * 1e-3)
        start = began + timedelta(seconds=1 + (task_id // slots) * run.task_seconds)
        host = f"node{task_id % run.hosts}"
        statuses = [("pending", invoked, 0)]
        # (try, launched, running, returned, fail history, host)
        tries: list[tuple[int, datetime, datetime | None, datetime | None, str, str]] = []
        bash = run.stdout_dir is not None and app == "summarize"
        stdout = stderr = ""
        if bash and run.stdout_dir is not None:
            stdout = str(run.stdout_dir / f"task-{task_id}.out")
            stderr = str(run.stdout_dir / f"task-{task_id}.err")
        final = None
        if any(d in failed_ids for d in deps):
            final = "dep_fail"
            statuses.append(("dep_fail", start, 0))
        else:
            n_tries = 2 if rng.random() < run.retry_fraction else 1
            fails_for_good = rng.random() < run.fail_fraction
            if fails_for_good:
                n_tries = 3
            moment = start
            for try_id in range(n_tries):
                duration = run.task_seconds * (0.5 + rng.random() * 0.5) / n_tries
                launched = moment
                running = launched + timedelta(seconds=0.05)
                returned = running + timedelta(seconds=duration)
                if cutoff is not None and running > cutoff:
                    if launched <= cutoff:
                        statuses += [("pending", launched, try_id)] if try_id else []
                        statuses.append(("launched", launched, try_id))
                        tries.append((try_id, launched, None, None, "", host))
                    break
                if cutoff is not None and returned > cutoff:
                    statuses += [("launched", launched, try_id), ("running", running, try_id)]
                    tries.append((try_id, launched, running, None, "", host))
                    _samples(writer, run, task_id, try_id, running, cutoff, rng)
                    break
                last_try = try_id == n_tries - 1
                ok = last_try and not fails_for_good
                if try_id:
                    statuses.append(("pending", launched, try_id))
                statuses += [
                    ("launched", launched, try_id),
                    ("running", running, try_id),
                    ("running_ended", returned, try_id),
                ]
                history = "" if ok else f"RuntimeError('synthetic failure of task {task_id}')"
                tries.append((try_id, launched, running, returned, history, host))
                _samples(writer, run, task_id, try_id, running, returned, rng)
                end = returned + timedelta(microseconds=300)
                if ok:
                    final = "exec_done"
                    statuses.append(("exec_done", end, try_id))
                else:
                    statuses.append(("failed" if last_try else "fail_retryable", end, try_id))
                    writer.add(
                        "failure",
                        (
                            run.run_id,
                            task_id,
                            try_id,
                            "RuntimeError",
                            (f"synthetic failure of task {task_id}"),
                            _traceback(app, task_id),
                            1 if bash else None,
                        ),
                    )
                    if last_try:
                        final = "failed"
                moment = end + timedelta(seconds=0.01)
        if is_failed(final):
            failed_ids.add(task_id)
            failed += 1
        elif final == "exec_done":
            completed += 1
        returned_at = statuses[-1][1] if final else None
        if bash and final == "exec_done":
            Path(stdout).write_text("".join(f"line {i} of task {task_id}\n" for i in range(30)))
            Path(stderr).write_text(f"warning: synthetic stderr of task {task_id}\n")
        writer.add(
            "task",
            (
                task_id,
                run.run_id,
                "" if app == "join_all" else ",".join(map(str, deps)),
                app,
                "0",
                None,
                "[]",
                "[]",
                "",
                stdout,
                stderr,
                _ts(invoked),
                _ts(returned_at) if returned_at else None,
                len(tries) - (1 if final == "exec_done" else 0) if tries else 0,
                float(max(0, len(tries) - 1)),
            ),
        )
        kind = "join" if app == "join_all" else "depends"
        if deps and (tries or kind == "depends"):  # joins are known from a try only
            for dep in deps:
                key = (_app_of(dep, run.tasks), app, kind)
                app_edges[key] = app_edges.get(key, 0) + 1
        for try_id, launched, try_running, try_returned, history, host_name in tries:
            joins = ",".join(map(str, deps)) if app == "join_all" else ""
            writer.add(
                "try",
                (
                    try_id,
                    task_id,
                    run.run_id,
                    "0",
                    host_name,
                    "htex",
                    _ts(launched),
                    _ts(try_running) if try_running else None,
                    _ts(try_returned) if try_returned else None,
                    history,
                    joins,
                ),
            )
        for state, moment, try_id in statuses:
            writer.add("status", (task_id, state, _ts(moment), run.run_id, try_id))
            last_event = max(last_event, moment)
        if task_state:
            state, moment, try_id = statuses[-1]  # statuses are in time order
            writer.add("state", (run.run_id, task_id, try_id, state, _ts(moment)))
    if task_state:
        for (source, target, kind), n in sorted(app_edges.items()):
            writer.add("app_edge", (run.run_id, source, target, kind, n))
    writer.flush()
    if task_state:  # the writer's rollups too, as taskscope's writer leaves a database
        rebuild_rollups(conn, run.run_id)
    _write_workflow(conn, run, began, last_event, completed, failed, now)


def _traceback(app: str, task_id: int) -> str:
    return (
        'Traceback (most recent call last):\n  File "workflow.py", line 12, '
        f"in {app}\n    raise RuntimeError('synthetic failure of task {task_id}')\n"
        f"RuntimeError: synthetic failure of task {task_id}\n"
    )


def _samples(
    writer: _Writer,
    run: SyntheticRun,
    task_id: int,
    try_id: int,
    running: datetime,
    end: datetime,
    rng: random.Random,
) -> None:
    if not run.with_resources:
        return
    seconds = max((end - running).total_seconds(), 1e-3)
    rss = 50e6 + rng.random() * 200e6
    for k in range(1, run.samples_per_try + 1):
        at = running + timedelta(seconds=seconds * k / run.samples_per_try)
        cpu = seconds * k / run.samples_per_try * 0.9
        writer.add(
            "resource",
            (
                try_id,
                task_id,
                run.run_id,
                _ts(at),
                1.0,
                1000 + task_id % 97,
                1.0,
                0.0,
                cpu * 0.9,
                cpu * 0.1,
                rss * 2,
                rss * (0.8 + 0.2 * k / run.samples_per_try),
                1e5 * k,
                1e4 * k,
                "running",
                "0",
                float(k),
                0.0,
            ),
        )


def _write_workflow(
    conn: sqlite3.Connection,
    run: SyntheticRun,
    began: datetime,
    last_event: datetime,
    completed: int,
    failed: int,
    now: datetime,
) -> None:
    finished = run.status in ("completed", "failed", "aborted")
    ended = last_event + timedelta(seconds=0.5) if finished else None
    status = run.status
    if run.status == "completed" and failed:
        status = "failed"
    conn.execute(
        "INSERT INTO workflow VALUES (?,?,?,?,?,?,?,?,?,?)",
        (
            run.run_id,
            run.workflow_name,
            "1.0",
            _ts(began),
            _ts(ended) if ended else None,
            "synthhost",
            "tester",
            f"/tmp/runinfo/{run.run_id}",
            failed,
            completed,
        ),
    )
    if run.status == "running":
        heartbeat = now
    elif run.status == "lost":
        heartbeat = last_event  # the process died: its heartbeat stopped with its events
    else:
        heartbeat = ended or now
    conn.execute(
        "INSERT INTO taskscope_run VALUES (?,?,?,?,?,?,?,?,?)",
        (
            run.run_id,
            "running" if run.status == "lost" else status,
            _ts(heartbeat),
            run.heartbeat_interval,
            "htex",
            4242,
            "3.11.7",
            "0.1.0",
            0,
        ),
    )
    node_id = conn.execute("SELECT COALESCE(MAX(id), 0) FROM node").fetchone()[0]
    for h in range(run.hosts):
        for k, moment in enumerate((began, last_event)):
            node_id += 1
            conn.execute(
                "INSERT INTO node VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    node_id,
                    run.run_id,
                    f"node{h}",
                    f"pool{h}",
                    "0",
                    run.workers,
                    16 * 2**30,
                    1 if k == 0 else int(not finished),
                    run.workers,
                    "3.11.7",
                    _ts(moment + timedelta(seconds=0.2)),
                    _ts(moment),
                ),
            )
    for status_name, moment in (("PENDING", began), ("RUNNING", began + timedelta(seconds=0.5))):
        conn.execute(
            "INSERT INTO block VALUES (?,?,?,?,?,?)",
            (run.run_id, "htex", "0", "local-1", _ts(moment), status_name),
        )


def create_database(
    path: Path | str, runs: list[SyntheticRun] | None = None, *, task_state: bool = True
) -> Path:
    """Write a database at `path` holding `runs` (none: an empty taskscope database).

    `task_state` also writes taskscope_task_state (each task's latest state, as taskscope's
    writer keeps it); without it the database is like one from a writer without that table."""
    path = Path(path)
    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = OFF")
        conn.executescript(PARSL_TABLES + TASKSCOPE_TABLES + INDEXES)
        if not task_state:  # as in a database from a writer that did not keep the tables
            conn.execute(f"DROP TABLE IF EXISTS {STATE_TABLE}")
            conn.execute(f"DROP TABLE IF EXISTS {APP_EDGE_TABLE}")
        conn.execute(
            "INSERT INTO taskscope_schema VALUES (?,?,?)",
            (SCHEMA_VERSION, TIMESTAMP_CONVENTION, _ts(_utcnow())),
        )
        for run in runs or []:
            _write_run(conn, run, task_state)
        conn.commit()
        conn.execute("ANALYZE")
        conn.commit()
    finally:
        conn.close()
    return path


def standard_runs(stdout_dir: Path | None = None) -> list[SyntheticRun]:
    """One run of each shape the dashboard must cope with."""
    return [
        SyntheticRun(
            "run-completed",
            tasks=120,
            status="completed",
            stdout_dir=stdout_dir,
            fail_fraction=0.0,
            workflow_name="pipeline",
        ),
        SyntheticRun(
            "run-failed",
            tasks=150,
            status="completed",
            fail_fraction=0.05,
            workflow_name="pipeline",
            seed=2,
        ),
        SyntheticRun("run-lost", tasks=80, status="lost", workflow_name="crashy", seed=3),
        # Live for an hour: long enough for a whole test session or a benchmark to read it.
        SyntheticRun(
            "run-live",
            tasks=100,
            status="running",
            workflow_name="live",
            seed=4,
            heartbeat_interval=1200.0,
        ),
        SyntheticRun(
            "run-noresources",
            tasks=40,
            status="completed",
            with_resources=False,
            workflow_name="quiet",
            seed=5,
        ),
    ]


def iter_run_ids(runs: list[SyntheticRun]) -> Iterator[str]:
    return (run.run_id for run in runs)
