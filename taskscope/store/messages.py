"""Typed monitoring messages: the contract between the capture side and the writer.

They live in the store layer because the writer consumes them and the store sits below the
capture side; ``taskscope.monitoring.messages`` re-exports them under the name users expect.

Every message is a msgspec Struct tagged by its kind, encoded with msgpack. Nothing on any
socket is ever unpickled: a payload that does not decode into one of these types is counted
and dropped by the hub.

Times are float seconds since the epoch (``time.time()``), taken where the event happened;
the writer turns them into UTC text in Parsl's format.

Senders: the DataFlowKernel (WorkflowStart/End, TaskInfo, TryInfo, TaskStatus, TryFailure),
the worker-side wrapper (TryRun, ResourceSample), executors (NodeInfo, BlockInfo).

Few messages per task, on purpose: every message costs the workflow process CPU to build and
the writer CPU to decode. So a TaskInfo or TryInfo may carry the state transition it came with
(``state``/``timestamp``): the kernel sends a task's row with its ``pending`` state, a try's
launch with ``launched``, its return with the final state. A worker sends one TryRun per short
try (start, end and final sample together). The writer still makes every row: one ``status``
row per transition, exactly as if each had been its own message.
"""

from __future__ import annotations

from typing import cast

import msgspec


class Message(msgspec.Struct, tag_field="kind", array_like=True, omit_defaults=True, gc=False):
    """Base of every message; ``array_like`` keeps the encoding compact and fast.

    ``gc=False``: a message holds only scalars and lists of scalars, so it can never be part
    of a reference cycle; leaving it out of the cyclic collector spares the workflow process
    (which makes several per task and holds them for up to 50 ms) collector passes."""


class WorkflowStart(Message, tag="workflow_start"):
    run_id: str
    workflow_name: str
    workflow_version: str
    time_began: float
    host: str
    user: str
    rundir: str
    python_version: str
    taskscope_version: str
    executors: list[str]
    pid: int
    heartbeat_interval: float
    # The workflow's working directory: relative stdout/stderr paths are relative to it.
    launch_dir: str | None = None


class WorkflowEnd(Message, tag="workflow_end"):
    run_id: str
    time_completed: float
    status: str  # completed | failed | aborted
    tasks_completed_count: int
    tasks_failed_count: int


class TaskInfo(Message, tag="task"):
    """A task's row; sent when it is created (with ``state='pending'``) and again when it ends
    (with its final state when that is not a try's: memo_done, dep_fail)."""

    run_id: str
    task_id: int
    func_name: str
    memoize: bool
    executor: str
    time_invoked: float
    depends: list[int] = []
    hashsum: str | None = None
    inputs: str | None = None
    outputs: str | None = None
    stdin: str | None = None
    stdout: str | None = None
    stderr: str | None = None
    time_returned: float | None = None
    fail_count: int = 0
    fail_cost: float = 0.0
    joins: list[int] | None = None
    state: str | None = None  # a transition of try ``try_id`` at ``timestamp``, if any
    try_id: int = 0
    timestamp: float | None = None
    # What the task asked for, sent with its first row only: its parsl_resource_specification
    # as JSON text (keys sorted) and its walltime= in seconds (taskscope_task_request).
    resource_specification: str | None = None
    walltime: float | None = None


class TaskStatus(Message, tag="status"):
    """One state transition (state names are Parsl's: pending, launched, running, ...)."""

    run_id: str
    task_id: int
    try_id: int
    state: str
    timestamp: float


class TryInfo(Message, tag="try"):
    """Part of a try's row; the writer merges partial updates (None means 'not known here')."""

    run_id: str
    task_id: int
    try_id: int
    executor: str | None = None
    hostname: str | None = None
    block_id: str | None = None
    time_launched: float | None = None
    time_running: float | None = None
    time_returned: float | None = None
    fail_history: str | None = None
    joins: str | None = None
    state: str | None = None  # a transition of this try at ``timestamp``, if any
    timestamp: float | None = None


class ResourceSample(Message, tag="resource"):
    """One sample of a try's process tree; CPU times are relative to the try's start."""

    run_id: str
    task_id: int
    try_id: int
    timestamp: float
    interval: float
    pid: int
    memory_percent: float
    children_count: int
    time_user: float
    time_system: float
    memory_virtual: float
    memory_resident: float
    disk_read: float
    disk_write: float
    status: str
    cpu_num: str
    ctx_switches_voluntary: float
    ctx_switches_involuntary: float


class TryRun(Message, tag="try_run"):
    """A try as its worker saw it: it started running; once over, when it ended (the
    ``running_ended`` state) and its final resource sample. A try that outlasts the worker's
    flush period is sent twice: start only, then complete (the writer makes no duplicates)."""

    run_id: str
    task_id: int
    try_id: int
    hostname: str
    block_id: str | None
    time_running: float
    time_ended: float | None = None
    sample: ResourceSample | None = None
    worker: str | None = None  # which worker ran it (an executor's worker id, or host:pid)


class TryFailure(Message, tag="try_failure"):
    run_id: str
    task_id: int
    try_id: int
    exception_type: str
    message: str
    traceback: str
    exit_code: int | None = None


class NodeInfo(Message, tag="node"):
    """A worker host or pool joined, left or changed (never one per task)."""

    run_id: str
    hostname: str
    uid: str
    block_id: str
    cpu_count: int
    total_memory: int
    active: bool
    worker_count: int
    python_v: str
    timestamp: float


class BlockInfo(Message, tag="block"):
    run_id: str
    executor_label: str
    block_id: str
    status: str
    timestamp: float
    job_id: str | None = None


AnyMessage = (
    WorkflowStart
    | WorkflowEnd
    | TaskInfo
    | TaskStatus
    | TryInfo
    | TryRun
    | TryFailure
    | ResourceSample
    | NodeInfo
    | BlockInfo
)

_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(list[AnyMessage])


def encode_batch(messages: list[Message]) -> bytes:
    """Encode a batch of messages as one msgpack payload (one socket frame)."""
    return _encoder.encode(messages)


def decode_batch(payload: bytes) -> list[Message]:
    """Decode one payload; raises ``msgspec.DecodeError`` (or ValidationError) on bad input."""
    # The decoder yields the concrete message types; callers handle them as Messages.
    return cast("list[Message]", _decoder.decode(payload))
