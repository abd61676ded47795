"""The records the read-side queries return: plain dataclasses, shared by the dashboard, the
terminal commands and users' notebooks."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")

# The state and run-status vocabulary is in taskscope.store.states.


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a bounded listing; `total` counts every matching row."""

    items: list[T]
    total: int
    limit: int
    offset: int

    @property
    def has_next(self) -> bool:
        return self.offset + len(self.items) < self.total

    @property
    def has_previous(self) -> bool:
        return self.offset > 0


@dataclass(frozen=True)
class DatabaseInfo:
    """What kind of monitoring database this is."""

    tables: frozenset[str]
    is_taskscope: bool
    timestamp_convention: str  # "utc" (taskscope) or "local" (Parsl: the writer's local time)
    schema_version: int | None

    @property
    def has_runs(self) -> bool:
        return "workflow" in self.tables

    def has(self, table: str) -> bool:
        return table in self.tables


@dataclass(frozen=True)
class RunRow:
    run_id: str
    workflow_name: str | None
    workflow_version: str | None
    time_began: str | None
    time_completed: str | None
    host: str | None
    user: str | None
    rundir: str | None
    status: str  # one of store.states.RUN_STATUSES
    duration_s: float | None
    task_count: int
    # final state -> number of tasks in it ("pending" also holds tasks with no status row)
    state_counts: dict[str, int] = field(default_factory=dict)
    last_heartbeat: str | None = None
    timestamp_convention: str = "local"  # "utc" for taskscope's runs, "local" for Parsl's
    tasks_failed: int | None = None  # workflow.tasks_failed_count


@dataclass(frozen=True)
class DurationStats:
    count: int
    minimum: float | None
    median: float | None
    mean: float | None
    maximum: float | None
    median_fraction: float = 1.0  # the median is of this fraction of the tasks (1.0: all)
    all_sampled: bool = False  # minimum, mean and maximum are of that sample too


@dataclass(frozen=True)
class RunSummary:
    run: RunRow
    executors: list[str]
    try_count: int
    retry_count: int
    duration: DurationStats | None  # None when asked for without durations
    last_activity: str | None
    timestamp_convention: str
    python_version: str | None = None
    taskscope_version: str | None = None
    messages_dropped: int = 0
    pid: int | None = None


@dataclass(frozen=True)
class AppStats:
    app: str
    tasks: int
    completed: int  # store.states.SUCCEEDED_FINAL_STATES: exec_done + memo_done
    failed: int  # store.states.FAILED_FINAL_STATES: failed + dep_fail
    unfinished: int
    tries: int
    mean_duration_s: float | None  # invoked -> returned
    mean_exec_s: float | None  # per try, running -> running_ended on the worker's clock
    # tries and the two means come from this fraction of the app's tasks (a hashed sample,
    # tries scaled up); task counts by state are always exact
    sample_fraction: float = 1.0


@dataclass(frozen=True)
class TaskRow:
    task_id: int
    app: str
    state: str
    time_invoked: str | None
    time_returned: str | None
    duration_s: float | None
    tries: int
    hostname: str | None
    fail_count: int


@dataclass(frozen=True)
class StatusEvent:
    state: str
    timestamp: str
    try_id: int


@dataclass(frozen=True)
class TryFailureRow:
    """A failed try as read from the database (the message is ``store.messages.TryFailure``);
    Parsl's databases may lack any field."""

    exception_type: str
    message: str | None
    traceback: str | None
    exit_code: int | None


@dataclass(frozen=True)
class TryRecord:
    try_id: int
    executor: str | None
    hostname: str | None
    block_id: str | None
    time_launched: str | None
    time_running: str | None
    time_returned: str | None
    fail_history: str | None
    joins: list[int]
    failure: TryFailureRow | None
    wait_s: float | None  # launched -> running
    run_s: float | None  # running -> running_ended, on the worker's clock
    worker: str | None = None  # which worker ran it (taskscope's runs)
    time_ended: str | None = None  # running_ended, on the worker's clock
    return_delay_s: float | None = None  # running_ended -> the kernel's returned


@dataclass(frozen=True)
class TaskDetail:
    run_id: str
    task_id: int
    app: str
    state: str
    depends: list[int]
    dependents: list[int]
    joins: list[int]
    memoize: bool
    hashsum: str | None
    inputs: str | None
    outputs: str | None
    stdin: str | None
    stdout: str | None
    stderr: str | None
    time_invoked: str | None
    time_returned: str | None
    duration_s: float | None
    fail_count: int
    fail_cost: float
    tries: list[TryRecord]
    history: list[StatusEvent]


@dataclass(frozen=True)
class ResourceSampleRow:
    """One resource row as the pages plot it (the message is ``store.messages.ResourceSample``)."""

    try_id: int
    timestamp: str
    seconds: float  # since the try started running (or since its first sample)
    cpu_user: float | None
    cpu_system: float | None
    memory_resident: float | None
    memory_virtual: float | None
    disk_read: float | None
    disk_write: float | None


@dataclass(frozen=True)
class Capacity:
    nodes: int
    cpus: int | None
    memory_bytes: float | None
    workers: int | None


@dataclass(frozen=True)
class UsageSeries:
    """Run-wide usage, averaged over equal time buckets (exact averages, not point samples)."""

    bucket_seconds: float
    times: list[str]  # start of each bucket, in the database's timestamp convention
    cpu_cores: list[float]
    memory_bytes: list[float]
    workers_busy: list[float]
    capacity: Capacity
    # the run's resource rows: counted, or above resource_query.EXACT_COUNT_ROWS estimated
    # from a hashed sample of about PILOT_TASKS tasks (it sets the sample's stride)
    sample_count: int
    # CPU and memory come from this fraction of the tasks (hashed sample), scaled up; 1.0 =
    # every resource row was used.
    sample_fraction: float = 1.0
    # The kernel's view: tries launched and not yet returned (run time plus the queue before
    # a worker took the try and the result's trip back); not bounded by the workers.
    in_flight: list[float] = field(default_factory=list)
    in_flight_fraction: float = 1.0  # in_flight is from this hashed sample of tries, scaled


@dataclass(frozen=True)
class BoxStats:
    count: int
    minimum: float
    q1: float
    median: float
    q3: float
    maximum: float
    mean: float


@dataclass(frozen=True)
class AppDistribution:
    app: str
    duration_s: BoxStats | None
    peak_memory_bytes: BoxStats | None
    cpu_time_s: BoxStats | None
    # the statistics describe this fraction of the app's tasks (a hashed sample); 1.0 = all
    sample_fraction: float = 1.0


@dataclass(frozen=True)
class TimelineSegment:
    state: str
    start: str
    end: str


@dataclass(frozen=True)
class TimelineTask:
    task_id: int
    app: str
    segments: list[TimelineSegment]


@dataclass(frozen=True)
class DagNode:
    task_id: int
    app: str
    state: str
    duration_s: float | None


@dataclass(frozen=True)
class DagEdge:
    source: int
    target: int
    kind: str  # "depends" or "joins"


@dataclass(frozen=True)
class TaskGraph:
    nodes: list[DagNode]
    edges: list[DagEdge]
    total_tasks: int  # tasks in the run, of which `nodes` is the chosen part
    # Dependencies and joins the chosen tasks list, drawn or not (a list entry each): the
    # page says how many of them the drawing leaves out.
    listed_links: int = 0
    chosen: int = 0  # the first `chosen` nodes are the part asked for, the rest its context


@dataclass(frozen=True)
class AppNode:
    app: str
    tasks: int
    state_counts: dict[str, int]


@dataclass(frozen=True)
class AppEdge:
    source: str
    target: str
    count: int


@dataclass(frozen=True)
class AppGraph:
    nodes: list[AppNode]
    edges: list[AppEdge]
    total_tasks: int
