"""The one writer: turns monitoring messages into rows, in batched transactions.

Messages from different processes arrive in any order (a worker's ``running`` can precede the
kernel's ``launched``); every statement here is an upsert or an insert-if-absent so that the
order of arrival never loses or overwrites information:

- a try row is created by whichever message about it comes first; later partial TryInfo and
  TryRun messages fill in the columns they know (``COALESCE``). ``task_executor`` is NOT NULL, so a
  worker message that arrives first stores ``''`` until the kernel's message names it.
- the kernel's ``time_returned`` wins over the worker's (the worker's arrives as a fallback).
- ``status`` rows are inserted-if-absent: an identical transition sent twice is one row; two
  different tries hitting the same task/state/microsecond are separated by one microsecond.

Completed and failed counts are kept by the writer from the final states it sees and written
to ``workflow`` on every commit, so a reader sees them current during the run.
"""

from __future__ import annotations

import sqlite3
import time
from collections import defaultdict
from typing import Any

from taskscope.store.app_edges import INSERT_DEPENDENT, UPSERT_APP_EDGE, AppEdgeBatch, TaskApps
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
from taskscope.store.state_flow import SeenTransitions, StateFlowBatch
from taskscope.store.states import FINAL_STATES
from taskscope.store.states import PARSL_COMPLETED_COUNT_STATES as COMPLETED_STATES
from taskscope.store.states import PARSL_FAILED_COUNT_STATES as FAILED_STATES
from taskscope.store.timefmt import utc_text
from taskscope.store.worker_rollup import UPSERT_LAUNCH_DIR, EndedTries, WorkerRollupBatch

# Batches a worker's report waits for its task's row before its app is counted as unknown.
WAIT_FOR_TASK_BATCHES = 50

_INSERT_WORKFLOW = """
INSERT OR IGNORE INTO workflow (run_id, workflow_name, workflow_version, time_began,
    time_completed, host, user, rundir, tasks_failed_count, tasks_completed_count)
VALUES (?, ?, ?, ?, NULL, ?, ?, ?, 0, 0)"""

_INSERT_RUN = """
INSERT OR IGNORE INTO taskscope_run (run_id, status, last_heartbeat, heartbeat_interval,
    executors, pid, python_version, taskscope_version, messages_dropped)
VALUES (?, 'running', ?, ?, ?, ?, ?, ?, 0)"""

_UPSERT_TASK = """
INSERT INTO task (task_id, run_id, task_depends, task_func_name, task_memoize, task_hashsum,
    task_inputs, task_outputs, task_stdin, task_stdout, task_stderr, task_time_invoked,
    task_time_returned, task_fail_count, task_fail_cost)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (task_id, run_id) DO UPDATE SET
    task_depends = COALESCE(task.task_depends, excluded.task_depends),
    task_hashsum = COALESCE(excluded.task_hashsum, task.task_hashsum),
    task_inputs = COALESCE(excluded.task_inputs, task.task_inputs),
    task_outputs = COALESCE(excluded.task_outputs, task.task_outputs),
    task_stdin = COALESCE(excluded.task_stdin, task.task_stdin),
    task_stdout = COALESCE(excluded.task_stdout, task.task_stdout),
    task_stderr = COALESCE(excluded.task_stderr, task.task_stderr),
    task_time_invoked = COALESCE(task.task_time_invoked, excluded.task_time_invoked),
    task_time_returned = COALESCE(excluded.task_time_returned, task.task_time_returned),
    task_fail_count = MAX(task.task_fail_count, excluded.task_fail_count),
    task_fail_cost = MAX(task.task_fail_cost, excluded.task_fail_cost)"""

# Every update of a try, merged per batch: ?9 is the kernel's return time (it wins over what is
# stored), ?10 the worker's (kept only when nothing else is known).
_UPSERT_TRY = """
INSERT INTO try (try_id, task_id, run_id, block_id, hostname, task_executor,
    task_try_time_launched, task_try_time_running, task_try_time_returned,
    task_fail_history, task_joins)
VALUES (?1, ?2, ?3, ?4, ?5, COALESCE(?6, ''), ?7, ?8, COALESCE(?9, ?10), ?11, ?12)
ON CONFLICT (try_id, task_id, run_id) DO UPDATE SET
    block_id = COALESCE(?4, try.block_id),
    hostname = COALESCE(?5, try.hostname),
    task_executor = COALESCE(NULLIF(?6, ''), try.task_executor),
    task_try_time_launched = COALESCE(try.task_try_time_launched, ?7),
    task_try_time_running = COALESCE(try.task_try_time_running, ?8),
    task_try_time_returned = COALESCE(?9, try.task_try_time_returned, ?10),
    task_fail_history = COALESCE(?11, try.task_fail_history),
    task_joins = COALESCE(?12, try.task_joins)"""

_INSERT_STATUS = """
INSERT OR IGNORE INTO status (task_id, task_status_name, timestamp, run_id, try_id)
VALUES (?, ?, ?, ?, ?)"""

# Only a newer transition replaces a task's state: batches may arrive out of order.
_UPSERT_TASK_STATE = """
INSERT INTO taskscope_task_state (run_id, task_id, try_id, state, timestamp)
VALUES (?, ?, ?, ?, ?)
ON CONFLICT (run_id, task_id) DO UPDATE SET
    try_id = excluded.try_id, state = excluded.state, timestamp = excluded.timestamp
WHERE excluded.timestamp >= taskscope_task_state.timestamp"""

_INSERT_FAILURE = """
INSERT OR REPLACE INTO taskscope_try_failure (run_id, task_id, try_id, exception_type,
    message, traceback, exit_code)
VALUES (?, ?, ?, ?, ?, ?, ?)"""

_INSERT_RESOURCE = """
INSERT OR IGNORE INTO resource (try_id, task_id, run_id, timestamp,
    resource_monitoring_interval, psutil_process_pid, psutil_process_memory_percent,
    psutil_process_children_count, psutil_process_time_user, psutil_process_time_system,
    psutil_process_memory_virtual, psutil_process_memory_resident, psutil_process_disk_read,
    psutil_process_disk_write, psutil_process_status, psutil_cpu_num,
    psutil_process_num_ctx_switches_voluntary, psutil_process_num_ctx_switches_involuntary)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"""

_INSERT_NODE = """
INSERT INTO node (run_id, hostname, uid, block_id, cpu_count, total_memory, active,
    worker_count, python_v, timestamp, last_heartbeat)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"""

_INSERT_BLOCK = """
INSERT OR IGNORE INTO block (run_id, executor_label, block_id, job_id, timestamp, status)
VALUES (?, ?, ?, ?, ?, ?)"""


def _joined(ids: list[int] | None) -> str | None:
    return None if ids is None else ",".join(str(i) for i in ids)


class _TryUpdate:
    """Everything one batch says about one try, merged with the upsert's own rules."""

    __slots__ = (
        "block_id",
        "executor",
        "fail_history",
        "hostname",
        "joins",
        "key",
        "launched",
        "returned_kernel",
        "returned_worker",
        "running",
    )

    def __init__(self, key: tuple[int, int, str]) -> None:
        self.key = key
        self.executor: str | None = None
        self.hostname: str | None = None
        self.block_id: str | None = None
        self.launched: float | None = None
        self.running: float | None = None
        self.returned_kernel: float | None = None
        self.returned_worker: float | None = None
        self.fail_history: str | None = None
        self.joins: str | None = None

    def from_kernel(self, m: TryInfo) -> None:
        if m.executor:
            self.executor = m.executor
        if m.block_id is not None:
            self.block_id = m.block_id
        if self.launched is None:
            self.launched = m.time_launched
        if m.time_running is not None and self.running is None:
            self.running = m.time_running
        if m.time_returned is not None:
            self.returned_kernel = m.time_returned
        if m.fail_history is not None:
            self.fail_history = m.fail_history
        if m.joins is not None:
            self.joins = m.joins

    def from_worker(
        self, hostname: str, block_id: str | None, running: float | None, ended: float | None
    ) -> None:
        self.hostname = hostname
        if block_id is not None:
            self.block_id = block_id
        if self.running is None:
            self.running = running
        if self.returned_worker is None:
            self.returned_worker = ended

    def row(self) -> tuple[Any, ...]:
        try_id, task_id, run_id = self.key
        return (
            try_id,
            task_id,
            run_id,
            self.block_id,
            self.hostname,
            self.executor,
            None if self.launched is None else utc_text(self.launched),
            None if self.running is None else utc_text(self.running),
            None if self.returned_kernel is None else utc_text(self.returned_kernel),
            None if self.returned_worker is None else utc_text(self.returned_worker),
            self.fail_history,
            self.joins,
        )


def _task_row(m: TaskInfo) -> list[Any]:
    return [
        m.task_id,
        m.run_id,
        _joined(m.depends),
        m.func_name,
        "1" if m.memoize else "0",
        m.hashsum,
        m.inputs,
        m.outputs,
        m.stdin,
        m.stdout,
        m.stderr,
        utc_text(m.time_invoked),
        None if m.time_returned is None else utc_text(m.time_returned),
        m.fail_count,
        m.fail_cost,
    ]


def _merge_task_row(earlier: list[Any], later: list[Any]) -> list[Any]:
    """``later`` applied after ``earlier`` (the same task), with the upsert's own rules."""
    merged = [x if x is not None else y for x, y in zip(later, earlier, strict=True)]
    merged[2] = earlier[2] if earlier[2] is not None else later[2]  # depends: first known
    merged[11] = earlier[11]  # invoked: first
    merged[13] = max(earlier[13], later[13])
    merged[14] = max(earlier[14], later[14])
    return merged


def _resource_row(m: ResourceSample) -> tuple[Any, ...]:
    return (
        m.try_id,
        m.task_id,
        m.run_id,
        utc_text(m.timestamp),
        m.interval,
        m.pid,
        m.memory_percent,
        m.children_count,
        m.time_user,
        m.time_system,
        m.memory_virtual,
        m.memory_resident,
        m.disk_read,
        m.disk_write,
        m.status,
        m.cpu_num,
        m.ctx_switches_voluntary,
        m.ctx_switches_involuntary,
    )


class DatabaseWriter:
    """Writes batches of messages into an open database (see ``database.open_for_writing``).

    Not thread-safe: one thread owns it. ``write`` opens a transaction if none is open;
    ``commit`` ends it. The caller decides the commit cadence.
    """

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.messages_written = 0
        # run_id -> [completed, failed]; both written to `workflow` at each commit.
        self._counts: dict[str, list[int]] = {}
        self._dirty_counts: set[str] = set()
        self._pending_dropped: dict[str, int] = defaultdict(int)
        self._heartbeats: dict[str, str] = {}
        self._in_txn = False
        # For taskscope_app_edge: each run's task -> app map, and the joining tasks counted.
        self._task_apps: dict[str, TaskApps] = {}
        self._joins_counted: dict[str, set[int]] = {}
        # For taskscope_occupancy: each run's tries whose end has been counted.
        self._ended_tries: dict[str, EndedTries] = {}
        self._internal_tasks: dict[str, set[int]] = {}  # join apps' tasks, per run
        self._seen_transitions: dict[str, SeenTransitions] = {}  # for taskscope_state_flow
        self._waiting_tries: list[TryRun] = []
        self._waiting_transitions: list[tuple[Any, ...]] = []
        self._waited = 0  # batches the oldest waiting report has waited
        # (run_id, executor_label, block_id) -> {microseconds: status} of the block's rows.
        self._block_stamps: dict[tuple[str, str, str], dict[int, str]] = {}

    # -- writing -------------------------------------------------------------------------

    def begin(self) -> None:
        """Open a transaction unless one is open (savepoints nest inside it)."""
        if not self._in_txn:
            # IMMEDIATE: the write lock is taken here or not at all, so "database is locked"
            # can only happen before anything is staged, and retrying then loses nothing.
            self.conn.execute("BEGIN IMMEDIATE")
            self._in_txn = True

    def write(self, messages: list[Message]) -> None:
        """Stage ``messages`` in the open transaction (opening one if needed).

        Everything a batch says about one task or one try becomes one upsert; every state
        transition one status row.
        """
        if not messages:
            return
        starts, ends = [], []
        tasks: dict[tuple[Any, ...], list[Any]] = {}
        tries: dict[tuple[Any, ...], _TryUpdate] = {}
        failures, resources, nodes, blocks = [], [], [], []
        statuses: list[tuple[Any, ...]] = []
        # Status rows are keyed by their timestamp's text, to the microsecond: collisions are
        # resolved in integer microseconds (two floats within one microsecond are one key).
        status_keys: set[tuple[Any, ...]] = set()  # (task_id, run_id, state, micros) taken
        next_free: dict[tuple[Any, ...], int] = {}  # first micros to try for a taken key
        placed: set[tuple[Any, ...]] = set()  # (task_id, run_id, state, micros sent, try_id)
        finals: list[tuple[str, str]] = []  # counted only once the batch is written
        # (run_id, task_id) -> its taskscope_task_state row
        latest_states: dict[tuple[str, int], tuple[str, int, int, str, str]] = {}
        edges = AppEdgeBatch(self._task_apps, self._joins_counted, self.conn)
        new_block_stamps: dict[tuple[str, str, str], dict[int, str]] = {}
        # Worker times, rolled up after the loop (when every app of the batch is known).
        rollup = WorkerRollupBatch(
            self.conn, self._task_apps, self._ended_tries, self._internal_tasks
        )
        flow = StateFlowBatch(self.conn, self._task_apps, self._seen_transitions)

        def block_stamp(m: BlockInfo) -> int:
            """The row's time in microseconds, moved on past the block's other rows: they
            are keyed by timestamp (Parsl's primary key), so a second change within one
            microsecond (submitted and running, seen in one poll) would be ignored. The
            same change sent twice keeps its time, and is written once."""
            key = (m.run_id, m.executor_label, m.block_id)
            kept = self._block_stamps.get(key, {})
            new = new_block_stamps.setdefault(key, {})
            micros = int(m.timestamp * 1_000_000 + 0.5)
            while True:
                status = new.get(micros) or kept.get(micros)
                if status is None or status == m.status:
                    break
                micros += 1
            new[micros] = m.status
            return micros

        def transition(task_id: int, run_id: str, state: str, ts: float, try_id: int) -> None:
            micros = int(ts * 1_000_000 + 0.5)
            origin = (task_id, run_id, state, micros)
            if (*origin, try_id) in placed:  # the same transition sent twice
                return
            placed.add((*origin, try_id))
            # Another try, same microsecond: keep both, one microsecond apart. Starting where
            # the last collision on this key ended keeps a batch linear in its size.
            taken = next_free.get(origin, micros)
            while (task_id, run_id, state, taken) in status_keys:
                taken += 1
            status_keys.add((task_id, run_id, state, taken))
            next_free[origin] = taken + 1
            if taken != micros:
                ts = taken / 1_000_000
            flow.collect(run_id, task_id, try_id, state, ts)
            text = utc_text(ts)
            statuses.append((task_id, state, text, run_id, try_id))
            latest_key = (run_id, task_id)
            latest = latest_states.get(latest_key)
            if latest is None or text >= latest[4]:
                latest_states[latest_key] = (run_id, task_id, try_id, state, text)
            if state in FINAL_STATES:
                finals.append((run_id, state))

        def try_update(run_id: str, task_id: int, try_id: int) -> _TryUpdate:
            key = (try_id, task_id, run_id)
            update = tries.get(key)
            if update is None:
                update = tries[key] = _TryUpdate(key)
            return update

        for message in messages:
            kind = type(message)
            # Dispatched on the exact type (``kind is X``: the cheapest test per message);
            # mypy cannot narrow through ``kind``, so the branches see ``m`` as Any.
            m: Any = message
            if kind is TryInfo:
                try_update(m.run_id, m.task_id, m.try_id).from_kernel(m)
                if m.executor:
                    rollup.note_launch(m)
                if m.joins:
                    edges.joins(m)
                if m.state is not None:
                    transition(m.task_id, m.run_id, m.state, m.timestamp, m.try_id)
            elif kind is TryRun:
                try_update(m.run_id, m.task_id, m.try_id).from_worker(
                    m.hostname, m.block_id, m.time_running, m.time_ended
                )
                transition(m.task_id, m.run_id, "running", m.time_running, m.try_id)
                if m.time_ended is not None:
                    transition(m.task_id, m.run_id, "running_ended", m.time_ended, m.try_id)
                if m.sample is not None:
                    resources.append(_resource_row(m.sample))
                rollup.collect(m)
            elif kind is TaskInfo:
                key = (m.task_id, m.run_id)
                row = _task_row(m)
                earlier = tasks.get(key)
                tasks[key] = row if earlier is None else _merge_task_row(earlier, row)
                edges.task(m)
                if m.state is not None:
                    transition(m.task_id, m.run_id, m.state, m.timestamp, m.try_id)
            elif kind is TaskStatus:
                transition(m.task_id, m.run_id, m.state, m.timestamp, m.try_id)
            elif kind is ResourceSample:
                resources.append(_resource_row(m))
            elif kind is TryFailure:
                failures.append(
                    (
                        m.run_id,
                        m.task_id,
                        m.try_id,
                        m.exception_type,
                        m.message,
                        m.traceback,
                        m.exit_code,
                    )
                )
            elif kind is NodeInfo:
                t = utc_text(m.timestamp)
                nodes.append(
                    (
                        m.run_id,
                        m.hostname,
                        m.uid,
                        m.block_id,
                        m.cpu_count,
                        m.total_memory,
                        int(m.active),
                        m.worker_count,
                        m.python_v,
                        t,
                        t,
                    )
                )
            elif kind is BlockInfo:
                blocks.append(
                    (
                        m.run_id,
                        m.executor_label,
                        m.block_id,
                        m.job_id,
                        utc_text(block_stamp(m) / 1_000_000),
                        m.status,
                    )
                )
            elif kind is WorkflowStart:
                starts.append(m)
            elif kind is WorkflowEnd:
                ends.append(m)
            else:
                raise TypeError(f"not a monitoring message: {m!r}")

        # Reports about tasks whose row has not arrived wait a few batches for it.
        give_up = self._waited >= WAIT_FOR_TASK_BATCHES
        rollup.resolve(edges.new_apps, self._waiting_tries, give_up)
        flow.resolve(edges.new_apps, self._waiting_transitions, give_up)
        self.begin()
        execute = self.conn.executemany
        for s in starts:
            self._start_run(s)
        if tasks:
            execute(_UPSERT_TASK, tasks.values())
        if tries:
            execute(_UPSERT_TRY, [u.row() for u in tries.values()])
        if statuses:
            execute(_INSERT_STATUS, statuses)
            execute(_UPSERT_TASK_STATE, latest_states.values())
        if edges.counts:
            execute(UPSERT_APP_EDGE, edges.rows())
        if edges.dependents:
            execute(INSERT_DEPENDENT, edges.dependents)
        if failures:
            execute(_INSERT_FAILURE, failures)
        if resources:
            execute(_INSERT_RESOURCE, resources)
        if nodes:
            execute(_INSERT_NODE, nodes)
        if blocks:
            execute(_INSERT_BLOCK, blocks)
        rollup.write()
        flow.write()
        for run_id, state in finals:
            self._count_state(run_id, state)
        for e in ends:
            self._end_run(e)
        edges.keep()
        rollup.keep()
        flow.keep()
        self._waiting_tries, self._waiting_transitions = rollup.waiting, flow.waiting
        self._waited = self._waited + 1 if rollup.waiting or flow.waiting else 0
        for block_key, stamps in new_block_stamps.items():
            self._block_stamps.setdefault(block_key, {}).update(stamps)
        self.messages_written += len(messages)

    def _count_state(self, run_id: str, state: str) -> None:
        if state in COMPLETED_STATES:
            index = 0
        elif state in FAILED_STATES:
            index = 1
        else:
            return
        counts = self._counts.get(run_id)
        if counts is None:
            counts = self._counts[run_id] = self._load_counts(run_id)
        counts[index] += 1
        self._dirty_counts.add(run_id)

    def _load_counts(self, run_id: str) -> list[int]:
        row = self.conn.execute(
            "SELECT tasks_completed_count, tasks_failed_count FROM workflow WHERE run_id = ?",
            (run_id,),
        ).fetchone()
        return [row[0], row[1]] if row else [0, 0]

    def _start_run(self, m: WorkflowStart) -> None:
        began = utc_text(m.time_began)
        self.conn.execute(
            _INSERT_WORKFLOW,
            (m.run_id, m.workflow_name, m.workflow_version, began, m.host, m.user, m.rundir),
        )
        self.conn.execute(
            _INSERT_RUN,
            (
                m.run_id,
                began,
                m.heartbeat_interval,
                ",".join(m.executors),
                m.pid,
                m.python_version,
                m.taskscope_version,
            ),
        )
        if m.launch_dir:
            self.conn.execute(UPSERT_LAUNCH_DIR, (m.run_id, m.launch_dir))

    def _end_run(self, m: WorkflowEnd) -> None:
        counts = self._counts.setdefault(m.run_id, self._load_counts(m.run_id))
        # The kernel's counts are authoritative at the end; never go below what was seen.
        counts[0] = max(counts[0], m.tasks_completed_count)
        counts[1] = max(counts[1], m.tasks_failed_count)
        self._dirty_counts.add(m.run_id)
        ended = utc_text(m.time_completed)
        self.conn.execute(
            "UPDATE workflow SET time_completed = ? WHERE run_id = ?", (ended, m.run_id)
        )
        self.conn.execute(
            "UPDATE taskscope_run SET status = ?, last_heartbeat = ? WHERE run_id = ?",
            (m.status, ended, m.run_id),
        )
        self._heartbeats.pop(m.run_id, None)

    def note_dropped(self, run_id: str, count: int = 1) -> None:
        """Count messages that could not be decoded; written to taskscope_run at commit."""
        self._pending_dropped[run_id] += count

    def heartbeat(self, run_id: str, t: float | None = None) -> None:
        self._heartbeats[run_id] = utc_text(time.time() if t is None else t)

    # -- committing ----------------------------------------------------------------------

    def has_pending(self) -> bool:
        return self._in_txn or bool(self._dirty_counts or self._heartbeats)

    def commit(self) -> None:
        """Write the counters and heartbeats, then commit the open transaction."""
        if self._dirty_counts or self._heartbeats or self._pending_dropped:
            self.begin()
            for run_id in self._dirty_counts:
                completed, failed = self._counts[run_id]
                self.conn.execute(
                    "UPDATE workflow SET tasks_completed_count = ?, tasks_failed_count = ? "
                    "WHERE run_id = ?",
                    (completed, failed, run_id),
                )
            self._dirty_counts.clear()
            for run_id, t in self._heartbeats.items():
                self.conn.execute(
                    "UPDATE taskscope_run SET last_heartbeat = ? "
                    "WHERE run_id = ? AND status = 'running'",
                    (t, run_id),
                )
            self._heartbeats.clear()
            for run_id, n in list(self._pending_dropped.items()):
                cur = self.conn.execute(
                    "UPDATE taskscope_run SET messages_dropped = messages_dropped + ? "
                    "WHERE run_id = ?",
                    (n, run_id),
                )
                if cur.rowcount:  # otherwise the run's row does not exist yet: keep counting
                    del self._pending_dropped[run_id]
        if self._in_txn:
            self.conn.execute("COMMIT")
            self._in_txn = False

    def rollback(self) -> None:
        if self._in_txn:
            self._in_txn = False
            # After disk full or an I/O error SQLite has often rolled back already; a second
            # ROLLBACK would only add a "no transaction is active" traceback to the log.
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")

    def _count_waiting(self) -> None:
        """At close: reports still waiting for their task's row are counted, app unknown."""
        if not (self._waiting_tries or self._waiting_transitions):
            return
        rollup = WorkerRollupBatch(
            self.conn, self._task_apps, self._ended_tries, self._internal_tasks
        )
        flow = StateFlowBatch(self.conn, self._task_apps, self._seen_transitions)
        rollup.resolve({}, self._waiting_tries, give_up=True)
        flow.resolve({}, self._waiting_transitions, give_up=True)
        self.begin()
        rollup.write()
        flow.write()
        rollup.keep()
        flow.keep()
        self._waiting_tries, self._waiting_transitions = [], []

    def close(self, analyze: bool = True) -> None:
        """Commit, refresh the query planner's statistics, and close the connection."""
        try:
            self._count_waiting()
            self.commit()
            if analyze:
                # A bounded ANALYZE: good statistics in milliseconds even on huge databases.
                self.conn.execute("PRAGMA analysis_limit = 1000")
                self.conn.execute("ANALYZE")
            # PASSIVE never waits for (or breaks) readers holding a snapshot.
            self.conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
        finally:
            self.conn.close()
