"""Synthetic taskscope monitoring databases, for tests and benchmarks of the read side.

They are written by the real writer (`taskscope.store.writer`) from the messages a real run
would send, so their rows and the writer's rollups are exactly what a run leaves; shaped like
a real run: a layered DAG (generate -> transform -> combine -> summarize, plus a join app), retried
tries, failures with their exception recorded, dependency failures, resource samples and a
worker pool in the node table. A run can be completed, failed, still running (fresh heartbeat),
lost (stale heartbeat) or aborted.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from taskscope.store.database import open_for_writing
from taskscope.store.graph_query import APP_EDGE_TABLE
from taskscope.store.messages import (
    BlockInfo,
    Message,
    NodeInfo,
    ResourceSample,
    TaskInfo,
    TaskStatus,
    TryFailure,
    TryInfo,
    TryRun,
    WorkflowEnd,
    WorkflowStart,
)
from taskscope.store.states import is_failed
from taskscope.store.task_state import STATE_TABLE
from taskscope.store.writer import DatabaseWriter

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


class _Feed:
    """Hands the run's messages to the real writer in batches, as the hub would."""

    BATCH = 5_000

    def __init__(self, writer: DatabaseWriter) -> None:
        self.writer = writer
        self.messages: list[Message] = []

    def add(self, message: Message) -> None:
        self.messages.append(message)
        if len(self.messages) >= self.BATCH:
            self.flush()

    def flush(self) -> None:
        if self.messages:
            self.writer.write(self.messages)
            self.messages = []


def _seconds(moment: datetime) -> float:
    return moment.replace(tzinfo=timezone.utc).timestamp()


def _write_run(writer: DatabaseWriter, run: SyntheticRun) -> None:
    """The run's messages, in the order a real run sends them, through the real writer."""
    rng = random.Random(run.seed)
    now = time.time()
    slots = max(1, run.workers * run.hosts)
    makespan = (run.tasks / slots + 2) * run.task_seconds
    unfinished_run = run.status in ("running", "lost", "aborted")
    if run.began is not None:
        began = _seconds(run.began)
    elif run.status == "running":
        began = now - makespan * 0.7
    elif run.status == "lost":
        began = now - (makespan * 0.7 + 7200)
    else:
        began = now - (makespan + 3600)
    if run.began is None:
        # A fixed phase within the second: the tries sit on a grid of task_seconds slots, so
        # with began taken from the clock their running spells fell inside whole seconds on
        # some runs and across second boundaries on others, and figures read at whole seconds
        # (tasks in each state over time) changed from one build to the next.
        began = math.floor(began) + 0.25
    cutoff = began + makespan * 0.7 if unfinished_run else None
    feed = _Feed(writer)
    run_id = run.run_id
    feed.add(
        WorkflowStart(
            run_id,
            run.workflow_name,
            "1.0",
            began,
            "synthhost",
            "tester",
            f"/tmp/runinfo/{run_id}",
            "3.11.7",
            "0.1.0",
            ["htex"],
            4242,
            run.heartbeat_interval,
        )
    )
    feed.add(BlockInfo(run_id, "htex", "0", "PENDING", began, "local-1"))
    feed.add(BlockInfo(run_id, "htex", "0", "RUNNING", began + 0.5, "local-1"))
    for h in range(run.hosts):
        feed.add(_node(run, h, True, began))
    failed_ids: set[int] = set()
    completed = failed = 0
    last_event = began
    for task_id in range(run.tasks):
        app = _app_of(task_id, run.tasks)
        deps = list(range(max(0, task_id - 5), task_id)) if app == "join_all" else []
        deps = deps if app == "join_all" else _depends(task_id, app)
        invoked = began + 0.5 + task_id * 1e-3
        start = began + 1 + (task_id // slots) * run.task_seconds
        host = f"node{task_id % run.hosts}"
        worker = f"{host}/w{(task_id // run.hosts) % max(1, run.workers)}"
        bash = run.stdout_dir is not None and app == "summarize"
        stdout = stderr = None
        if bash and run.stdout_dir is not None:
            stdout = str(run.stdout_dir / f"task-{task_id}.out")
            stderr = str(run.stdout_dir / f"task-{task_id}.err")
        joins = deps if app == "join_all" else None
        feed.add(
            TaskInfo(
                run_id,
                task_id,
                app,
                False,
                "htex",
                invoked,
                [] if joins else deps,
                inputs="[]",
                outputs="[]",
                stdout=stdout,
                stderr=stderr,
                state="pending",
                timestamp=invoked,
            )
        )
        last_event = max(last_event, invoked)
        final: str | None = None
        final_at = invoked
        tries = 0
        if any(d in failed_ids for d in deps):
            final, final_at = "dep_fail", start
        else:
            n_tries = 2 if rng.random() < run.retry_fraction else 1
            fails_for_good = rng.random() < run.fail_fraction
            if fails_for_good:
                n_tries = 3
            moment = start
            history: list[str] = []
            # A task's tries, with the gaps between them (dispatch, return, retry), fit its
            # worker's slot: a worker never runs two tries at once.
            budget = run.task_seconds - n_tries * 0.07
            for try_id in range(n_tries):
                duration = budget * (0.5 + rng.random() * 0.5) / n_tries
                launched = moment
                running = launched + 0.05
                returned = running + duration
                if cutoff is not None and launched > cutoff:
                    break
                tries += 1
                if try_id:
                    feed.add(TaskStatus(run_id, task_id, try_id, "pending", launched))
                feed.add(
                    TryInfo(
                        run_id,
                        task_id,
                        try_id,
                        executor="htex",
                        hostname=host,
                        block_id="0",
                        time_launched=launched,
                        state="launched",
                        timestamp=launched,
                    )
                )
                last_event = max(last_event, launched)
                if cutoff is not None and running > cutoff:
                    break
                if cutoff is not None and returned > cutoff:  # still running at the end
                    samples = _samples(run, task_id, try_id, running, cutoff, rng)
                    feed.add(TryRun(run_id, task_id, try_id, host, "0", running, worker=worker))
                    for sample in samples:
                        feed.add(sample)
                    last_event = max(last_event, running)
                    break
                samples = _samples(run, task_id, try_id, running, returned, rng)
                for sample in samples[:-1]:
                    feed.add(sample)
                feed.add(
                    TryRun(
                        run_id,
                        task_id,
                        try_id,
                        host,
                        "0",
                        running,
                        returned,
                        samples[-1] if samples else None,
                        worker,
                    )
                )
                last_try = try_id == n_tries - 1
                ok = last_try and not fails_for_good
                end = returned + 300e-6
                if ok:
                    state = "exec_done"
                else:
                    state = "failed" if last_try else "fail_retryable"
                    history.append(f"RuntimeError('synthetic failure of task {task_id}')")
                    feed.add(
                        TryFailure(
                            run_id,
                            task_id,
                            try_id,
                            "RuntimeError",
                            f"synthetic failure of task {task_id}",
                            _traceback(app, task_id),
                            1 if bash else None,
                        )
                    )
                feed.add(
                    TryInfo(
                        run_id,
                        task_id,
                        try_id,
                        time_returned=end,
                        fail_history=history[-1] if not ok else None,
                        joins=",".join(map(str, joins)) if joins else None,
                        state=state,
                        timestamp=end,
                    )
                )
                last_event = max(last_event, end)
                if ok or last_try:
                    final, final_at = state, end
                moment = end + 0.01
        if is_failed(final):
            failed_ids.add(task_id)
            failed += 1
        elif final == "exec_done":
            completed += 1
        if bash and final == "exec_done" and stdout and stderr:
            Path(stdout).write_text("".join(f"line {i} of task {task_id}\n" for i in range(30)))
            Path(stderr).write_text(f"warning: synthetic stderr of task {task_id}\n")
        if final is not None:
            # The task's row again at its end: its return time and failure count (and the
            # final state when no try made it: dep_fail).
            feed.add(
                TaskInfo(
                    run_id,
                    task_id,
                    app,
                    False,
                    "htex",
                    invoked,
                    [] if joins else deps,
                    time_returned=final_at,
                    fail_count=tries - (1 if final == "exec_done" else 0),
                    fail_cost=float(max(0, tries - 1)),
                    joins=joins,
                    state="dep_fail" if final == "dep_fail" else None,
                    timestamp=final_at if final == "dep_fail" else None,
                )
            )
            last_event = max(last_event, final_at)
    finished = run.status in ("completed", "failed", "aborted")
    for h in range(run.hosts):
        feed.add(_node(run, h, not finished, last_event))
    if finished:
        status = "failed" if run.status == "completed" and failed else run.status
        feed.add(WorkflowEnd(run_id, last_event + 0.5, status, completed, failed))
    feed.flush()
    if run.status == "running":
        writer.heartbeat(run_id, now)
    elif run.status == "lost":
        writer.heartbeat(run_id, last_event)  # the process died: its heartbeat stopped too
    writer.commit()


def _node(run: SyntheticRun, host: int, active: bool, moment: float) -> NodeInfo:
    return NodeInfo(
        run.run_id,
        f"node{host}",
        f"pool{host}",
        "0",
        run.workers,
        16 * 2**30,
        active,
        run.workers,
        "3.11.7",
        moment,
    )


def _traceback(app: str, task_id: int) -> str:
    return (
        'Traceback (most recent call last):\n  File "workflow.py", line 12, '
        f"in {app}\n    raise RuntimeError('synthetic failure of task {task_id}')\n"
        f"RuntimeError: synthetic failure of task {task_id}\n"
    )


def _samples(
    run: SyntheticRun,
    task_id: int,
    try_id: int,
    running: float,
    end: float,
    rng: random.Random,
) -> list[ResourceSample]:
    if not run.with_resources:
        return []
    seconds = max(end - running, 1e-3)
    rss = 50e6 + rng.random() * 200e6
    samples = []
    for k in range(1, run.samples_per_try + 1):
        cpu = seconds * k / run.samples_per_try * 0.9
        samples.append(
            ResourceSample(
                run.run_id,
                task_id,
                try_id,
                running + seconds * k / run.samples_per_try,
                1.0,
                1000 + task_id % 97,
                1.0,
                0,
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
            )
        )
    return samples


# What a writer without taskscope's rollups leaves (``task_state=False``): these stay empty.
_ROLLUP_TABLES = (
    "taskscope_try_run",
    "taskscope_occupancy",
    "taskscope_occupancy_minute",
    "taskscope_state_flow",
    "taskscope_state_flow_minute",
    "taskscope_app_total",
    "taskscope_app_run_total",
    "taskscope_dependent",
    "taskscope_run_extra",
)


def create_database(
    path: Path | str, runs: list[SyntheticRun] | None = None, *, task_state: bool = True
) -> Path:
    """Write a database at `path` holding `runs` (none: an empty taskscope database), through
    the real writer (``store/writer.py``), so its rows and rollups are what a run leaves.

    Without `task_state` the database is like one from a writer that kept no rollups: no
    taskscope_task_state or taskscope_app_edge table, and the other rollup tables empty, so
    readers take their fallback paths (those of Parsl's databases)."""
    path = Path(path)
    writer = DatabaseWriter(open_for_writing(path))
    try:
        writer.conn.execute("PRAGMA synchronous = OFF")  # a test fixture: no crash to survive
        for run in runs or []:
            _write_run(writer, run)
        if not task_state:
            writer.begin()
            for table in _ROLLUP_TABLES:
                writer.conn.execute(f"DELETE FROM {table}")
            writer.conn.execute(f"DROP TABLE IF EXISTS {STATE_TABLE}")
            writer.conn.execute(f"DROP TABLE IF EXISTS {APP_EDGE_TABLE}")
            writer.commit()
    finally:
        writer.close(analyze=True)
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
