"""One batch of messages turned into row batches: a small handler per message type.

``HANDLERS`` maps each message type to its handler; a handler only accumulates rows. What a
batch says about one task or one try is folded into one row by the column rules of
``TASK_TABLE`` and ``TRY_TABLE`` (see ``row_merge``), which also make the upserts, so every
merge rule is stated once, there. ``WriteBatch.write_rows`` then runs one statement per table.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any, cast

from taskscope.store.app_edges import INSERT_DEPENDENT, UPSERT_APP_EDGE, AppEdgeBatch
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
from taskscope.store.row_merge import Column, MergedTable, Rule
from taskscope.store.state_flow import StateFlowBatch
from taskscope.store.states import FINAL_STATES
from taskscope.store.timefmt import utc_text
from taskscope.store.timestamps import seconds_between_sql
from taskscope.store.worker_rollup import WorkerRollupBatch

KEEP, FIRST, LATEST, LARGEST = Rule.KEEP, Rule.FIRST_KNOWN, Rule.LATEST_KNOWN, Rule.LARGEST

# A task's row comes from the kernel, when the task is created and again when it ends.
TASK_TABLE = MergedTable(
    "task",
    ("task_id", "run_id"),
    (
        Column("task_id"),
        Column("run_id"),
        Column("task_depends", FIRST),
        Column("task_func_name"),
        Column("task_memoize"),
        Column("task_hashsum", LATEST),
        Column("task_inputs", LATEST),
        Column("task_outputs", LATEST),
        Column("task_stdin", LATEST),
        Column("task_stdout", LATEST),
        Column("task_stderr", LATEST),
        Column("task_time_invoked", FIRST),
        Column("task_time_returned", LATEST),
        Column("task_fail_count", LARGEST),
        Column("task_fail_cost", LARGEST),
    ),
)

# A try's row is made by whichever of the kernel's TryInfo and the worker's TryRun comes first.
# ``task_executor`` is NOT NULL: a worker's report arriving first stores '' until the kernel's
# names it. The return time is the kernel's; the worker's end is its fallback (its slot is the
# row's last, after the columns).
TRY_TABLE = MergedTable(
    "try",
    ("try_id", "task_id", "run_id"),
    (
        Column("try_id"),
        Column("task_id"),
        Column("run_id"),
        Column("block_id", LATEST),
        Column("hostname", LATEST),
        Column("task_executor", LATEST, if_unknown=""),
        Column("task_try_time_launched", FIRST),
        Column("task_try_time_running", FIRST),
        Column("task_try_time_returned", LATEST, fallback=True),
        Column("task_fail_history", LATEST),
        Column("task_joins", LATEST),
    ),
)
# A task's and a try's times are held as floats while the batch folds them, and formatted once
# at the end: the time columns, and the fallback slot of a try's return time.
_TASK_TIMES = tuple(i for i, c in enumerate(TASK_TABLE.columns) if c.name.startswith("task_time_"))
_TRY_TIMES = tuple(
    i for i, c in enumerate(TRY_TABLE.columns) if c.name.startswith("task_try_time_")
) + tuple(len(TRY_TABLE.columns) + i for i in range(len(TRY_TABLE.fallbacks)))

UPSERT_TASK = TASK_TABLE.upsert_sql()
UPSERT_TRY = TRY_TABLE.upsert_sql()

# A batch's status row is (run_id, task_id, try_id, state, timestamp), the parameters of
# both statements: a task's latest row is also its task-state row.
_INSERT_STATUS = """
INSERT OR IGNORE INTO status (run_id, task_id, try_id, task_status_name, timestamp)
VALUES (?, ?, ?, ?, ?)"""

# Only a newer transition replaces a task's state: batches may arrive out of order (so the
# latest-wins rule of this table is the SQL's; a batch keeps its own latest by the same test).
_UPSERT_TASK_STATE = """
INSERT INTO taskscope_task_state (run_id, task_id, try_id, state, timestamp)
VALUES (?, ?, ?, ?, ?)
ON CONFLICT (run_id, task_id) DO UPDATE SET
    try_id = excluded.try_id, state = excluded.state, timestamp = excluded.timestamp
WHERE excluded.timestamp >= taskscope_task_state.timestamp"""

# A task's duration, computed from the times its task row gets from this batch as readers
# compute it from the row (so a list sorted by the stored figure is in the order of the shown
# one): the kernel sends the same invocation time in every row of a task, and the return
# time is the latest known, as in the task row. A task whose end is written before any of
# its states (the writer takes events in any order) gets a 'pending' row as of its
# invocation, which any of its transitions replaces.
_SET_DURATION = f"""
INSERT INTO taskscope_task_state (run_id, task_id, try_id, state, timestamp, duration)
VALUES (?1, ?2, 0, 'pending', ?3, {seconds_between_sql("?3", "?4")})
ON CONFLICT (run_id, task_id) DO UPDATE SET duration = excluded.duration"""
_INVOKED, _RETURNED = (
    [c.name for c in TASK_TABLE.columns].index(name)
    for name in ("task_time_invoked", "task_time_returned")
)

_INSERT_FAILURE = """
INSERT OR REPLACE INTO taskscope_try_failure (run_id, task_id, try_id, exception_type,
    message, traceback, exit_code)
VALUES (?, ?, ?, ?, ?, ?, ?)"""

# A task's request is fixed when it is submitted: the first row stays.
_INSERT_REQUEST = """
INSERT OR IGNORE INTO taskscope_task_request (run_id, task_id, resource_specification, walltime)
VALUES (?, ?, ?, ?)"""

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

BlockKey = tuple[str, str, str]  # (run_id, executor_label, block_id)


def _micros(t: float) -> int:
    return int(t * 1_000_000 + 0.5)


def _stamp(timestamp: float | None) -> float:
    """A message's state comes with its time; one without fails its batch (TypeError)."""
    return cast("float", timestamp)


def _task_row(m: TaskInfo) -> list[Any]:
    return [
        m.task_id,
        m.run_id,
        ",".join(map(str, m.depends)),
        m.func_name,
        "1" if m.memoize else "0",
        m.hashsum,
        m.inputs,
        m.outputs,
        m.stdin,
        m.stdout,
        m.stderr,
        m.time_invoked,  # the times as floats: formatted once, when the batch is written
        m.time_returned,
        m.fail_count,
        m.fail_cost,
    ]


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


class WriteBatch:
    """The rows one ``DatabaseWriter.write`` call stages, gathered message by message."""

    def __init__(
        self,
        edges: AppEdgeBatch,
        rollup: WorkerRollupBatch,
        flow: StateFlowBatch,
        block_stamps: dict[BlockKey, dict[int, str]],
    ) -> None:
        self.edges, self.rollup, self.flow = edges, rollup, flow
        self.starts: list[WorkflowStart] = []
        self.ends: list[WorkflowEnd] = []
        self.tasks: dict[tuple[int, str], list[Any]] = {}
        self.tries: dict[tuple[Any, ...], list[Any]] = {}  # by (try_id, task_id, run_id)
        self.failures: list[tuple[Any, ...]] = []
        self.requests: list[tuple[Any, ...]] = []
        self.resources: list[tuple[Any, ...]] = []
        self.nodes: list[tuple[Any, ...]] = []
        self.blocks: list[tuple[Any, ...]] = []
        self.statuses: list[tuple[Any, ...]] = []
        self.finals: list[tuple[str, str]] = []  # counted only once the batch is written
        # (run_id, task_id) -> its taskscope_task_state row
        self.latest_states: dict[tuple[str, int], tuple[str, int, int, str, str]] = {}
        # Status rows are keyed by their timestamp's text, to the microsecond: collisions are
        # resolved in integer microseconds (two floats within one microsecond are one key).
        self._status_keys: set[tuple[Any, ...]] = set()  # (task, run, state, micros) taken
        # (task, run, state, micros sent) -> the first try sent with it, and for those sent
        # by several tries: [the first micros to try next, the later tries sent with it].
        self._first_try: dict[tuple[Any, ...], int] = {}
        self._crowded: dict[tuple[Any, ...], list[Any]] = {}
        self._flow_pending = flow.pending  # every transition, for taskscope_state_flow
        # The blocks' {microseconds: status} of earlier batches, and of this one.
        self._kept_block_stamps = block_stamps
        self.new_block_stamps: dict[BlockKey, dict[int, str]] = {}

    # -- handlers, one per message type (see HANDLERS) -----------------------------------

    def task_info(self, m: TaskInfo) -> None:
        key = (m.task_id, m.run_id)
        row = _task_row(m)
        held = self.tasks.get(key)
        if held is None:
            self.tasks[key] = row
        else:
            TASK_TABLE.fold(held, row)
        self.edges.task(m)
        if m.resource_specification is not None or m.walltime is not None:
            self.requests.append((m.run_id, m.task_id, m.resource_specification, m.walltime))
        if m.state is not None:
            self.transition(m.task_id, m.run_id, m.state, _stamp(m.timestamp), m.try_id)

    def try_info(self, m: TryInfo) -> None:
        # The kernel's ``hostname`` is not used: the worker's TryRun names the host.
        self._fold_try(
            [
                m.try_id,
                m.task_id,
                m.run_id,
                m.block_id,
                None,
                m.executor or None,  # '' names no executor
                m.time_launched,
                m.time_running,
                m.time_returned,
                m.fail_history,
                m.joins,
                None,
            ]
        )
        if m.executor:
            self.rollup.note_launch(m)
        if m.joins:
            self.edges.joins(m)
        if m.state is not None:
            self.transition(m.task_id, m.run_id, m.state, _stamp(m.timestamp), m.try_id)

    def try_run(self, m: TryRun) -> None:
        self._fold_try(
            [
                m.try_id,
                m.task_id,
                m.run_id,
                m.block_id,
                m.hostname,
                None,
                None,
                m.time_running,
                None,
                None,
                None,
                m.time_ended,  # the fallback of task_try_time_returned
            ]
        )
        self.transition(m.task_id, m.run_id, "running", m.time_running, m.try_id)
        if m.time_ended is not None:
            self.transition(m.task_id, m.run_id, "running_ended", m.time_ended, m.try_id)
        if m.sample is not None:
            self.resources.append(_resource_row(m.sample))
        self.rollup.collect(m)

    def task_status(self, m: TaskStatus) -> None:
        self.transition(m.task_id, m.run_id, m.state, m.timestamp, m.try_id)

    def resource(self, m: ResourceSample) -> None:
        self.resources.append(_resource_row(m))

    def try_failure(self, m: TryFailure) -> None:
        self.failures.append(
            (m.run_id, m.task_id, m.try_id, m.exception_type, m.message, m.traceback, m.exit_code)
        )

    def node(self, m: NodeInfo) -> None:
        t = utc_text(m.timestamp)
        self.nodes.append(
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

    def block(self, m: BlockInfo) -> None:
        stamp = utc_text(self._block_stamp(m) / 1_000_000)
        self.blocks.append((m.run_id, m.executor_label, m.block_id, m.job_id, stamp, m.status))

    def workflow_start(self, m: WorkflowStart) -> None:
        self.starts.append(m)

    def workflow_end(self, m: WorkflowEnd) -> None:
        self.ends.append(m)

    # -- what the handlers share ---------------------------------------------------------

    def _fold_try(self, row: list[Any]) -> None:
        key = (row[0], row[1], row[2])
        held = self.tries.get(key)
        if held is None:
            self.tries[key] = row
        else:
            TRY_TABLE.fold(held, row)

    def transition(self, task_id: int, run_id: str, state: str, ts: float, try_id: int) -> None:
        """One status row, unless the same transition was sent twice."""
        micros = int(ts * 1_000_000 + 0.5)
        origin = (task_id, run_id, state, micros)  # the status row's key, as sent
        status_keys = self._status_keys
        first_try = self._first_try.get(origin)
        if first_try is None and origin not in status_keys:  # nearly always: the key is free
            status_keys.add(origin)
            self._first_try[origin] = try_id
        elif first_try == try_id:
            return  # the same transition, sent again
        else:
            taken = self._place_crowded(origin, first_try, try_id)
            if taken is None:
                return  # the same transition, sent again
            if taken != micros:
                ts = taken / 1_000_000
        self._flow_pending.append((run_id, task_id, try_id, state, ts))
        text = utc_text(ts)
        row = (run_id, task_id, try_id, state, text)
        self.statuses.append(row)
        latest_key = (run_id, task_id)
        latest = self.latest_states.get(latest_key)
        if latest is None or text >= latest[4]:  # the rule of _UPSERT_TASK_STATE
            self.latest_states[latest_key] = row
        if state in FINAL_STATES:
            self.finals.append((run_id, state))

    def _place_crowded(
        self, origin: tuple[Any, ...], first_try: int | None, try_id: int
    ) -> int | None:
        """The microsecond of a transition whose key is taken (None: it is a repeat).

        Another try, same microsecond: keep both, one microsecond apart. Starting where the
        last collision on this key ended keeps a batch linear in its size."""
        crowd = self._crowded.get(origin)
        if crowd is None:
            # The key's first try (if it was sent here) holds the microsecond it was sent at.
            micros = origin[3]
            crowd = self._crowded[origin] = [micros if first_try is None else micros + 1, set()]
            if first_try is None:
                self._first_try[origin] = try_id
        elif try_id in crowd[1]:
            return None
        task_id, run_id, state, _ = origin
        taken: int = crowd[0]
        while (task_id, run_id, state, taken) in self._status_keys:
            taken += 1
        self._status_keys.add((task_id, run_id, state, taken))
        crowd[0] = taken + 1
        crowd[1].add(try_id)
        return taken

    def _block_stamp(self, m: BlockInfo) -> int:
        """The row's time in microseconds, moved on past the block's other rows: they are
        keyed by timestamp (Parsl's primary key), so a second change within one microsecond
        (submitted and running, seen in one poll) would be ignored. The same change sent
        twice keeps its time, and is written once."""
        key = (m.run_id, m.executor_label, m.block_id)
        kept = self._kept_block_stamps.get(key, {})
        new = self.new_block_stamps.setdefault(key, {})
        micros = _micros(m.timestamp)
        while True:
            status = new.get(micros) or kept.get(micros)
            if status is None or status == m.status:
                break
            micros += 1
        new[micros] = m.status
        return micros

    # -- writing -------------------------------------------------------------------------

    @staticmethod
    def _formatted(held: dict[Any, list[Any]], times: tuple[int, ...]) -> list[list[Any]]:
        """The rows of `held`, their `times` formatted as the database stores them."""
        rows = list(held.values())
        for row in rows:
            for i in times:
                t = row[i]
                if t is not None:
                    row[i] = utc_text(t)
        return rows

    def write_rows(self, conn: sqlite3.Connection) -> None:
        """Every row of the batch but the runs' (their start and end are the writer's)."""
        execute = conn.executemany
        task_rows = self._formatted(self.tasks, _TASK_TIMES) if self.tasks else []
        if task_rows:
            execute(UPSERT_TASK, task_rows)
        if self.tries:
            execute(UPSERT_TRY, self._formatted(self.tries, _TRY_TIMES))
        if self.statuses:
            execute(_INSERT_STATUS, self.statuses)
            execute(_UPSERT_TASK_STATE, self.latest_states.values())
        ended = [
            (row[1], row[0], row[_INVOKED], row[_RETURNED])
            for row in task_rows
            if row[_RETURNED] is not None
        ]
        if ended:
            execute(_SET_DURATION, ended)
        edges = self.edges
        if edges.counts:
            execute(UPSERT_APP_EDGE, edges.rows())
        if edges.dependents:
            execute(INSERT_DEPENDENT, edges.dependents)
        if self.failures:
            execute(_INSERT_FAILURE, self.failures)
        if self.requests:
            execute(_INSERT_REQUEST, self.requests)
        if self.resources:
            execute(_INSERT_RESOURCE, self.resources)
        if self.nodes:
            execute(_INSERT_NODE, self.nodes)
        if self.blocks:
            execute(_INSERT_BLOCK, self.blocks)
        self.rollup.write()
        self.flow.write()


Handler = Callable[[WriteBatch, Any], None]

# Dispatched on the exact type: one dict lookup per message.
HANDLERS: dict[type[Message], Handler] = {
    TryInfo: WriteBatch.try_info,
    TryRun: WriteBatch.try_run,
    TaskInfo: WriteBatch.task_info,
    TaskStatus: WriteBatch.task_status,
    ResourceSample: WriteBatch.resource,
    TryFailure: WriteBatch.try_failure,
    NodeInfo: WriteBatch.node,
    BlockInfo: WriteBatch.block,
    WorkflowStart: WriteBatch.workflow_start,
    WorkflowEnd: WriteBatch.workflow_end,
}
