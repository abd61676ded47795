"""The one writer: turns monitoring messages into rows, in batched transactions.

Messages from different processes arrive in any order (a worker's ``running`` can precede the
kernel's ``launched``); every statement here is an upsert or an insert-if-absent so that the
order of arrival never loses or overwrites information:

- a task or try row is created by whichever message about it comes first; later partial
  messages fill in the columns they know. Which message wins for each column is stated once,
  in ``write_batch.TASK_TABLE`` and ``TRY_TABLE`` (the kernel's ``time_returned`` wins over the
  worker's, for one), and the same rules fold a batch's messages and make the upserts.
- ``status`` rows are inserted-if-absent: an identical transition sent twice is one row; two
  different tries hitting the same task/state/microsecond are separated by one microsecond.

Each message type has its handler (``write_batch.HANDLERS``), which gathers rows into the
batch's ``WriteBatch``; ``write`` then stages them, one statement per table.

Completed and failed counts are kept by the writer from the final states it sees and written
to ``workflow`` on every commit, so a reader sees them current during the run.
"""

from __future__ import annotations

import sqlite3
import time
from collections import defaultdict
from typing import Any

from taskscope.store.analysis_rollup import MARK_RUN_FROM_START
from taskscope.store.app_edges import AppEdgeBatch, TaskApps
from taskscope.store.messages import Message, TryRun, WorkflowEnd, WorkflowStart
from taskscope.store.state_flow import SeenTransitions, StateFlowBatch
from taskscope.store.states import PARSL_COMPLETED_COUNT_STATES as COMPLETED_STATES
from taskscope.store.states import PARSL_FAILED_COUNT_STATES as FAILED_STATES
from taskscope.store.timefmt import utc_text
from taskscope.store.worker_rollup import UPSERT_LAUNCH_DIR, EndedTries, WorkerRollupBatch
from taskscope.store.write_batch import HANDLERS, WriteBatch

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
        batch = WriteBatch(
            AppEdgeBatch(self._task_apps, self._joins_counted, self.conn),
            WorkerRollupBatch(self.conn, self._task_apps, self._ended_tries, self._internal_tasks),
            StateFlowBatch(self.conn, self._task_apps, self._seen_transitions),
            self._block_stamps,
        )
        handlers = HANDLERS
        for message in messages:
            try:
                handler = handlers[type(message)]
            except KeyError:
                raise TypeError(f"not a monitoring message: {message!r}") from None
            handler(batch, message)
        self._write_batch(batch)
        self.messages_written += len(messages)

    def _write_batch(self, batch: WriteBatch) -> None:
        # Reports about tasks whose row has not arrived wait a few batches for it.
        give_up = self._waited >= WAIT_FOR_TASK_BATCHES
        edges, rollup, flow = batch.edges, batch.rollup, batch.flow
        rollup.resolve(edges.new_apps, self._waiting_tries, give_up)
        flow.resolve(edges.new_apps, self._waiting_transitions, give_up)
        self.begin()
        for s in batch.starts:
            self._start_run(s)
        batch.write_rows(self.conn)
        for run_id, state in batch.finals:
            self._count_state(run_id, state)
        for e in batch.ends:
            self._end_run(e)
        edges.keep()
        rollup.keep()
        flow.keep()
        self._waiting_tries, self._waiting_transitions = rollup.waiting, flow.waiting
        self._waited = self._waited + 1 if rollup.waiting or flow.waiting else 0
        for block_key, stamps in batch.new_block_stamps.items():
            self._block_stamps.setdefault(block_key, {}).update(stamps)

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
        # The analysis's totals (analysis_rollup.py) hold every row of a run begun here.
        self.conn.execute(MARK_RUN_FROM_START, (m.run_id,))
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
