"""Failure groups: every failed try of a run, grouped by signature and cause.

A group is one (cause, signature) pair. Causes:

- ``exception``: the app raised;
- ``bash exit code N``: a bash app's command exited with status N;
- ``worker lost``: the process running the try died (killed, segfault);
- ``memory``: it died (or raised MemoryError) with its peak resident memory at or above
  `MEMORY_NEAR_FRACTION` of the memory available to one worker (node memory ÷ workers);
- ``walltime``: it ran out of its ``walltime``, or its block ended while it ran;
- ``dependency``: it did not run because a task it depends on (or joined) failed; the group
  names the group of that ancestor;
- ``serialization``: its function, arguments or result could not be serialized.

Groups of taskscope's runs come from ``taskscope_try_failure`` (type, message, traceback,
exit code); those of Parsl's runs from ``try.task_fail_history`` (the exception's repr).
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from operator import attrgetter
from pathlib import Path
from typing import Any

from taskscope.store.analysis.context import (
    RunContext,
    chunks,
    task_states,
    tasks_in_state,
)
from taskscope.store.analysis.critical_path import DEPENDENCY_LISTS
from taskscope.store.analysis.signature import (
    digits_zeroed,
    frame_name_is_shared,
    mask_message,
    parse_exception_repr,
    signature,
    user_frame_name,
)
from taskscope.store.analysis.tries import tries_per_place
from taskscope.store.id_lists import id_list
from taskscope.store.output_tail import read_tails
from taskscope.store.sampling import hashed_in_sample_each, in_sample, sample_stride
from taskscope.store.states import FINAL_STATES, SUCCEEDED_FINAL_STATES
from taskscope.store.timestamps import parse_timestamp

MEMORY_NEAR_FRACTION = 0.8
# A block that ended this long after a try returned still counts as ending while it ran: the
# executor notices a lost worker before the provider reports the job gone.
BLOCK_END_GRACE_S = 2.0
BLOCK_ENDED = ("COMPLETED", "CANCELLED", "FAILED", "TIMEOUT", "MISSING", "SCALED_IN")
STDERR_TAIL_BYTES = 4096
STDERR_TAIL_LINES = 10
CONCENTRATION_MIN_SHARE = 0.5
RESOURCE_EXACT_TRIES = 20_000  # say "87% on host" only when one host has at least half

EXCEPTION, WORKER_LOST, MEMORY, WALLTIME, DEPENDENCY, SERIALIZATION = (
    "exception",
    "worker lost",
    "memory",
    "walltime",
    "dependency",
    "serialization",
)
_LOST_TYPES = {"WorkerLost", "ManagerLost", "WorkerLostError", "KilledWorker"}
_WALLTIME_TYPES = {"AppTimeout", "WalltimeExceeded", "TimeoutError"}
_SERIALIZATION_TYPES = {
    "SerializationError",
    "DeserializationError",
    "PicklingError",
    "UnpicklingError",
}
_DEPENDENCY_TYPES = {"DependencyError", "JoinError"}
_EXIT_CODE_TEXT = re.compile(r"exit(?:ed with)? code (-?\d+)", re.IGNORECASE)


@dataclass(slots=True)
class FailedTry:
    task_id: int
    try_id: int
    app: str
    exception_type: str
    message: str
    traceback: str | None
    exit_code: int | None
    hostname: str | None
    block_id: str | None
    started: str | None  # running, else launched
    returned: str | None
    joins: list[int] = field(default_factory=list)
    cpu_s: float | None = None
    peak_rss: float | None = None
    measured: bool = False  # its resource samples were read (all tries, or the sample's)


_TASK_OF = attrgetter("task_id")
_APP_OF = attrgetter("app")
_HOST_OF = attrgetter("hostname")
_BLOCK_OF = attrgetter("block_id")
_RETURNED_OF = attrgetter("returned")
_EXAMPLE_ORDER = attrgetter("returned", "task_id", "try_id")


@dataclass(frozen=True)
class Share:
    name: str
    tries: int
    fraction: float


@dataclass(frozen=True)
class FailureExample:
    task_id: int
    try_id: int | None
    message: str
    traceback: str | None
    stderr_path: str | None
    stderr_tail: list[str] | None  # None: no file, or not readable here


@dataclass
class FailureGroup:
    signature: str
    cause: str
    exception_type: str
    where: str | None  # the user frame (or the app, when the traceback has none)
    count: int  # failed tries; for dependency groups, tasks that did not run
    tasks: list[int]
    apps: list[str]
    hosts: list[Share]
    blocks: list[Share]
    concentration: str | None  # "87% on nid00123", when one host holds most of the group
    first: str | None
    last: str | None
    retried_then_succeeded: int  # tasks of the group that succeeded on a later try
    permanent: int  # tasks whose last failure is in this group and that ended failed
    unfinished: int  # tasks still being retried (live runs)
    cpu_s_failed: float  # CPU seconds spent on the group's failed tries
    example: FailureExample | None
    ancestor: str | None = None  # dependency groups: the signature of the root failure
    history: str | None = None  # "new", "recurring" or "gone" since `since_run`
    since_run: str | None = None
    previous_count: int | None = None
    # cpu_s_failed is exact (1.0) or scaled up from this fraction of the group's tries
    cpu_s_sample_fraction: float = 1.0

    @property
    def key(self) -> tuple[str, str]:
        return (self.cause, self.signature)


def _taskscope_failed_tries(ctx: RunContext) -> list[FailedTry]:
    # The columns in FailedTry's order, so each row is passed as it is (no unpacking by name
    # of 152,000 rows at 10^6 tasks).
    rows = ctx.conn.execute(
        "SELECT f.task_id, f.try_id, t.task_func_name, "
        "COALESCE(NULLIF(f.exception_type, ''), 'Exception'), COALESCE(f.message, ''), "
        "f.traceback, f.exit_code, y.hostname, y.block_id, "
        "COALESCE(y.task_try_time_running, y.task_try_time_launched), "
        "y.task_try_time_returned, y.task_joins "
        "FROM taskscope_try_failure f JOIN task t ON t.run_id = f.run_id AND t.task_id = f.task_id "
        "LEFT JOIN try y ON y.run_id = f.run_id AND y.task_id = f.task_id AND y.try_id = f.try_id "
        "WHERE f.run_id = ?",
        (ctx.run_id,),
    )
    tries = [FailedTry(*row) for row in rows]
    for attempt in tries:
        # task_joins is read as its text and parsed here, only where there is one.
        joins: Any = attempt.joins
        attempt.joins = id_list(joins) if joins else []
    return tries


def _parsl_failed_tries(ctx: RunContext) -> list[FailedTry]:
    """Parsl records each try's exception as its repr in try.task_fail_history. A dependency
    failure also gets a try row there; it is found from the task's dep_fail state instead."""
    tries = []
    for task_id, try_id, app, history, host, block, started, returned, joins in ctx.conn.execute(
        "SELECT y.task_id, y.try_id, t.task_func_name, y.task_fail_history, y.hostname, "
        "y.block_id, COALESCE(y.task_try_time_running, y.task_try_time_launched), "
        "y.task_try_time_returned, y.task_joins FROM try y JOIN task t ON t.run_id = y.run_id "
        "AND t.task_id = y.task_id WHERE y.run_id = ? AND y.task_fail_history IS NOT NULL "
        "AND y.task_fail_history != ''",
        (ctx.run_id,),
    ):
        parsed = parse_exception_repr(history)
        if parsed.exception_type == "DependencyError":
            continue
        code = None
        if parsed.exception_type == "BashExitFailure":
            numbers = re.findall(r"-?\d+", parsed.message)
            code = int(numbers[-1]) if numbers else None
        tries.append(
            FailedTry(
                task_id,
                try_id,
                app,
                parsed.exception_type,
                parsed.message,
                None,
                code,
                host,
                block,
                started,
                returned,
                id_list(joins),
            )
        )
    return tries


def failed_tries(ctx: RunContext) -> list[FailedTry]:
    """Every failed try of the run, with its CPU time and peak memory when sampled."""
    if ctx.by_taskscope and ctx.has("taskscope_try_failure"):
        tries = _taskscope_failed_tries(ctx)
    elif ctx.has("try") and ctx.has("task"):
        tries = _parsl_failed_tries(ctx)
    else:
        return []
    if ctx.has("resource") and tries:
        _attach_resources(ctx, tries)
    return tries


def _attach_resources(ctx: RunContext, tries: list[FailedTry]) -> None:
    """CPU time and peak memory of failed tries. Up to RESOURCE_EXACT_TRIES failed tries all
    are read; above, the tries whose process died (their peak memory decides between
    `memory` and `worker lost`) and a hashed sample of the others, whose CPU time is then
    scaled up per group (`FailureGroup.cpu_s_sample_fraction` says so)."""
    by_key = {(t.task_id, t.try_id): t for t in tries}
    cpu = "(COALESCE(psutil_process_time_user, 0) + COALESCE(psutil_process_time_system, 0))"
    stride = sample_stride(len(tries), RESOURCE_EXACT_TRIES)
    if ctx.by_taskscope and ctx.has("taskscope_try_failure"):
        failed = (
            f"SELECT task_id, try_id FROM taskscope_try_failure WHERE run_id = :run "
            f"AND ({in_sample('task_id', stride)} OR exception_type IN "
            "('WorkerLost', 'ManagerLost', 'WorkerLostError', 'KilledWorker') "
            "OR exit_code IN (137, -9))"
        )
    else:
        failed = (
            f"SELECT task_id, try_id FROM try WHERE run_id = :run AND task_fail_history "
            f"IS NOT NULL AND task_fail_history != '' AND ({in_sample('task_id', stride)} "
            "OR task_fail_history LIKE '%Lost%' OR task_fail_history LIKE '%137%')"
        )
    for attempt, measured in zip(
        tries, hashed_in_sample_each(map(_TASK_OF, tries), stride), strict=True
    ):
        attempt.measured = measured
    # One pass: each chosen try's samples through the (run_id, task_id, try_id) index.
    for task_id, try_id, high, low, rss in ctx.conn.execute(
        f"SELECT f.task_id, f.try_id, MAX({cpu}), MIN({cpu}), "
        f"MAX(psutil_process_memory_resident) FROM ({failed}) f CROSS JOIN resource r "
        "ON r.run_id = :run AND r.task_id = f.task_id AND r.try_id = f.try_id "
        "GROUP BY f.task_id, f.try_id",
        {"run": ctx.run_id},
    ):
        found = by_key.get((task_id, try_id))
        if found is None:
            continue
        # taskscope's CPU figures start at zero with each try; Parsl's are the worker's.
        found.cpu_s = high if ctx.by_taskscope else max(0.0, (high or 0) - (low or 0))
        found.peak_rss = rss


def _memory_per_worker(ctx: RunContext) -> dict[str, float]:
    """hostname -> memory available to one worker (the latest node row of each pool)."""
    if not ctx.has("node"):
        return {}
    per_worker: dict[str, float] = {}
    for host, memory, workers, _ in ctx.conn.execute(
        "SELECT hostname, total_memory, worker_count, MAX(timestamp) FROM node WHERE run_id = ? "
        "GROUP BY hostname, uid, block_id",
        (ctx.run_id,),
    ):
        if memory and workers:
            share = memory / workers
            per_worker[host] = min(per_worker.get(host, share), share)
    return per_worker


def _block_ends(ctx: RunContext) -> dict[str, str]:
    """block_id -> when it ended (its first terminal status row)."""
    if not ctx.has("block"):
        return {}
    marks = ",".join("?" * len(BLOCK_ENDED))
    return dict(
        ctx.conn.execute(
            f"SELECT block_id, MIN(timestamp) FROM block WHERE run_id = ? AND status IN ({marks}) "
            "GROUP BY block_id",
            (ctx.run_id, *BLOCK_ENDED),
        )
    )


def _ended_while_running(attempt: FailedTry, block_ends: dict[str, str]) -> bool:
    if attempt.block_id is None or attempt.block_id not in block_ends:
        return False
    ended = parse_timestamp(block_ends[attempt.block_id])
    start, returned = parse_timestamp(attempt.started), parse_timestamp(attempt.returned)
    if ended is None or start is None or returned is None:
        return False
    return start <= ended and (ended - returned).total_seconds() <= BLOCK_END_GRACE_S


def classify(
    attempt: FailedTry, memory_per_worker: dict[str, float], block_ends: dict[str, str]
) -> str:
    """The cause of one failed try (see the module docstring)."""
    etype = attempt.exception_type
    if etype in _DEPENDENCY_TYPES:
        return DEPENDENCY
    if etype in _SERIALIZATION_TYPES:
        return SERIALIZATION
    if etype in _WALLTIME_TYPES:
        return WALLTIME
    if etype == "MemoryError":
        return MEMORY
    code = attempt.exit_code
    if code is None and etype == "BashExitFailure":
        found = _EXIT_CODE_TEXT.search(attempt.message)
        code = int(found.group(1)) if found else None
    died = etype in _LOST_TYPES or code in (137, -9)
    if died:
        available = memory_per_worker.get(attempt.hostname or "")
        if available and attempt.peak_rss and attempt.peak_rss >= MEMORY_NEAR_FRACTION * available:
            return MEMORY
        if _ended_while_running(attempt, block_ends):
            return WALLTIME
    if code is not None:
        return f"bash exit code {code}"
    if died:
        return WORKER_LOST
    return EXCEPTION


def _lost_reason(message: str) -> str:
    """What killed a worker, without the worker's id and host (which vary per try)."""
    _, _, reason = message.partition("was lost while running this task:")
    return reason.strip() or message


def try_signature(attempt: FailedTry, cause: str) -> tuple[str, str | None]:
    """(signature, where) of one failed try."""
    message = attempt.message
    if cause in (WORKER_LOST, MEMORY, WALLTIME) and attempt.exception_type in _LOST_TYPES:
        message = _lost_reason(message)
    where = user_frame_name(attempt.traceback) or attempt.app
    return signature(attempt.exception_type, mask_message(message), where), where


def read_tail(path_text: str | None, base: Path | None) -> list[str] | None:
    """The last lines of a task's stderr file, or None when it is not readable from here, or
    not a regular file outside /proc, /sys and /dev (read without blocking, under a time
    limit: store/output_tail.py)."""
    if not path_text:
        return None
    return read_tails([path_text], base, max_bytes=STDERR_TAIL_BYTES, max_lines=STDERR_TAIL_LINES)[
        0
    ].lines


def _shares(counter: Counter[str]) -> list[Share]:
    total = sum(counter.values())
    return [Share(name, n, n / total) for name, n in counter.most_common()] if total else []


@dataclass
class _Bucket:
    cause: str
    exception_type: str
    where: str | None
    tries: list[FailedTry] = field(default_factory=list)


def _concentration(hosts: list[Share], run_hosts: int) -> str | None:
    if run_hosts < 2 or not hosts or hosts[0].fraction < CONCENTRATION_MIN_SHARE:
        return None
    return f"{hosts[0].fraction:.0%} on {hosts[0].name}"


def _run_hosts(ctx: RunContext) -> int:
    if not ctx.has("try"):
        return 0
    return len({host for host, _, _ in tries_per_place(ctx) if host})


def _stderr_of(ctx: RunContext, task_id: int) -> str | None:
    row = ctx.conn.execute(
        "SELECT task_stderr FROM task WHERE run_id = ? AND task_id = ?", (ctx.run_id, task_id)
    ).fetchone()
    return (row[0] or None) if row else None


def failure_groups(
    ctx: RunContext,
    *,
    read_files: bool = True,
    with_history: bool = True,
    with_examples: bool = True,
) -> list[FailureGroup]:
    """The run's failure groups, largest first (permanent failures before retried ones).

    `read_files`: whether to read the tail of an example's stderr file (off for a dashboard
    reachable from the network). `with_history`: compare with the workflow's previous run."""
    tries = failed_tries(ctx)
    # Failed tries per (host, block), for host_health (hosts.py) to reuse instead of a join.
    # Counted as written (a C loop), then the few distinct places normalised: NULL and ''
    # alike, block ids as text.
    failed_places: Counter[tuple[str | None, str | None]] = Counter()
    written = Counter(zip(map(_HOST_OF, tries), map(_BLOCK_OF, tries), strict=True))
    for (host, block), n in written.items():
        failed_places[(host or None, None if block in (None, "") else str(block))] += n
    ctx.shared["failed_places"] = failed_places
    memory = _memory_per_worker(ctx)
    block_ends = _block_ends(ctx)
    buckets: dict[tuple[str, str], _Bucket] = {}
    last_failure: dict[int, tuple[int, tuple[str, str]]] = {}
    # A try's signature depends on its cause, app, type and the shape of its message and
    # traceback (digits zeroed): computed once per shape, not once per try (each message is
    # distinct when it names its task, as "synthetic failure of task 42" does).
    by_shape: dict[tuple[str, str, str, int, str], tuple[str, str | None]] = {}
    for attempt in tries:
        cause = classify(attempt, memory, block_ends)
        message = attempt.message
        shape = (
            cause,
            attempt.app,
            attempt.exception_type,
            len(message),
            digits_zeroed(message + (attempt.traceback or "")),
        )
        found = by_shape.get(shape)
        if found is None:
            found = try_signature(attempt, cause)
            if frame_name_is_shared(attempt.traceback):
                by_shape[shape] = found
        sig, where = found
        key = (cause, sig)
        bucket = buckets.get(key)
        if bucket is None:
            bucket = buckets[key] = _Bucket(cause, attempt.exception_type, where)
        bucket.tries.append(attempt)
        # Each task's last failed try decides the group its permanent failure belongs to.
        previous = last_failure.get(attempt.task_id)
        if previous is None or attempt.try_id >= previous[0]:
            last_failure[attempt.task_id] = (attempt.try_id, key)
    failed_tasks = {task_id: key for task_id, (_, key) in last_failure.items()}
    states = _failed_task_states(ctx, failed_tasks)

    # Join tries that failed because what they joined failed belong to a dependency group too:
    # re-key them under their root ancestor once the ancestors are known.
    dep_fail = tasks_in_state(ctx, "dep_fail")
    ancestors = _dependency_roots(ctx, dep_fail, failed_tasks, buckets)
    for key in [k for k in buckets if k[0] == DEPENDENCY]:
        bucket = buckets.pop(key)
        for attempt in bucket.tries:
            root = _root_of_joins(attempt.joins, failed_tasks, ancestors)
            new_key = _dependency_key(root)
            buckets.setdefault(
                new_key, _Bucket(DEPENDENCY, attempt.exception_type, attempt.app)
            ).tries.append(attempt)
            failed_tasks[attempt.task_id] = new_key

    run_hosts = _run_hosts(ctx)
    base = Path(ctx.run.rundir) if ctx.run.rundir else None
    groups = []
    for (cause, sig), bucket in buckets.items():
        groups.append(
            _group_from_tries(
                ctx,
                cause,
                sig,
                bucket,
                states,
                failed_tasks,
                run_hosts,
                base,
                read_files and with_examples,
                with_examples,
            )
        )
    groups += _dependency_groups(ctx, dep_fail, ancestors, groups)
    # Root causes first: a dependency group follows from another group.
    groups.sort(key=lambda g: (g.cause == DEPENDENCY, -g.permanent, -g.count, g.signature))
    if with_history:
        groups = _with_history(ctx, groups)
    return groups


def _failed_task_states(
    ctx: RunContext, failed_tasks: dict[int, tuple[str, str]]
) -> dict[int, str]:
    """The current state of every task with a failed try."""
    if not failed_tasks:
        return {}
    if ctx.states.from_table and ctx.by_taskscope and ctx.has("taskscope_try_failure"):
        # One join in SQL instead of a lookup per task.
        return dict(
            ctx.conn.execute(
                "SELECT z.task_id, z.state FROM (SELECT DISTINCT task_id FROM "
                "taskscope_try_failure "
                "WHERE run_id = ?1) f JOIN taskscope_task_state z ON z.run_id = ?1 "
                "AND z.task_id = f.task_id",
                (ctx.run_id,),
            ).fetchall()
        )
    return task_states(ctx, failed_tasks)


def _dependency_key(root: tuple[str, str] | None) -> tuple[str, str]:
    if root is None:
        return (DEPENDENCY, "DependencyError: a dependency failed (cause not recorded)")
    return (DEPENDENCY, f"DependencyError: a dependency failed with [{root[0]}] {root[1]}")


def _root_of_joins(
    joins: list[int],
    failed_tasks: dict[int, tuple[str, str]],
    ancestors: dict[int, tuple[str, str] | None],
) -> tuple[str, str] | None:
    for task_id in joins:
        if task_id in ancestors and ancestors[task_id] is not None:
            return ancestors[task_id]
        key = failed_tasks.get(task_id)
        if key is not None and key[0] != DEPENDENCY:
            return key
    return None


def _dependency_roots(
    ctx: RunContext,
    dep_fail: list[int],
    failed_tasks: dict[int, tuple[str, str]],
    buckets: dict[tuple[str, str], _Bucket],
) -> dict[int, tuple[str, str] | None]:
    """dep_fail task -> the group key of the failure it descends from (through other dep_fail
    tasks), or None when that failure was not recorded."""
    depends: dict[int, list[int]] = {}
    every_list = ctx.shared.get(DEPENDENCY_LISTS)  # read by the critical path's floor
    if every_list is not None:
        # Every task with dependencies is in it; a dep_fail task (it has a task row: the
        # kernel sends it before any state) missing from it has none.
        known = dict(every_list)
        for task_id in dep_fail:
            depends[task_id] = id_list(known.get(task_id))
    else:
        for chunk in chunks(dep_fail):
            marks = ",".join("?" * len(chunk))
            for task_id, text in ctx.conn.execute(
                f"SELECT task_id, task_depends FROM task WHERE run_id = ? AND task_id IN ({marks})",
                (ctx.run_id, *chunk),
            ):
                depends[task_id] = id_list(text)
    roots: dict[int, tuple[str, str] | None] = {}
    joins_of = {a.task_id: a.joins for b in buckets.values() for a in b.tries if a.joins}

    def resolve(task_id: int, seen: set[int]) -> tuple[str, str] | None:
        if task_id in roots:
            return roots[task_id]
        seen.add(task_id)
        found = None
        for dep in depends.get(task_id, []):
            if dep in seen:
                continue
            key = failed_tasks.get(dep)
            if key is not None and key[0] != DEPENDENCY:
                found = key
            elif dep in depends:
                found = resolve(dep, seen)
            elif dep in joins_of:  # a join app that failed because what it joined failed
                found = _root_of_joins(joins_of[dep], failed_tasks, roots)
            if found is not None:
                break
        roots[task_id] = found
        return found

    for task_id in sorted(depends):
        resolve(task_id, set())
    return roots


def _group_from_tries(
    ctx: RunContext,
    cause: str,
    sig: str,
    bucket: _Bucket,
    states: dict[int, str],
    failed_tasks: dict[int, tuple[str, str]],
    run_hosts: int,
    base: Path | None,
    read_files: bool,
    with_examples: bool,
) -> FailureGroup:
    tries = bucket.tries
    key = (cause, sig)
    # Each figure by one map over the tries (C loops, not a generator step per try).
    tasks = sorted(set(map(_TASK_OF, tries)))
    succeeded = permanent = unfinished = 0
    for task_id in tasks:
        state, last_key = states.get(task_id), failed_tasks.get(task_id)
        if state in SUCCEEDED_FINAL_STATES:
            succeeded += 1
        if state == "failed" and last_key == key:
            permanent += 1
        if state not in FINAL_STATES:
            unfinished += 1
    host_counts = Counter(map(_HOST_OF, tries))
    block_counts = Counter(map(_BLOCK_OF, tries))
    for missing in (None, ""):  # insertion order (ties in most_common) is kept
        host_counts.pop(missing, None)
        block_counts.pop(missing, None)
    hosts = _shares(host_counts)
    blocks = _shares(block_counts)
    moments = [m for m in map(_RETURNED_OF, tries) if m]
    measured = [a for a in tries if a.measured]
    fraction = len(measured) / len(tries) if tries else 1.0
    cpu_s = sum(a.cpu_s or 0.0 for a in measured) / fraction if measured else 0.0
    example = None
    if with_examples:
        # The most recent try: its traceback is what the user will see again next.
        if len(moments) == len(tries):  # every try has its return time: no None to replace
            sample = max(tries, key=_EXAMPLE_ORDER)
        else:
            sample = max(tries, key=lambda a: (a.returned or "", a.task_id, a.try_id))
        stderr_path = _stderr_of(ctx, sample.task_id)
        example = FailureExample(
            sample.task_id,
            sample.try_id,
            sample.message,
            sample.traceback,
            stderr_path,
            read_tail(stderr_path, base) if read_files else None,
        )
    ancestor = None
    if cause == DEPENDENCY and "] " in sig:
        ancestor = sig.split("] ", 1)[1]
    return FailureGroup(
        signature=sig,
        cause=cause,
        exception_type=bucket.exception_type,
        where=bucket.where,
        count=len(tries),
        tasks=tasks,
        apps=sorted(set(map(_APP_OF, tries))),
        hosts=hosts,
        blocks=blocks,
        concentration=_concentration(hosts, run_hosts),
        first=min(moments) if moments else None,
        last=max(moments) if moments else None,
        retried_then_succeeded=succeeded,
        permanent=permanent,
        unfinished=unfinished,
        cpu_s_failed=cpu_s,
        example=example,
        ancestor=ancestor,
        cpu_s_sample_fraction=fraction,
    )


def _dependency_groups(
    ctx: RunContext,
    dep_fail: list[int],
    roots: dict[int, tuple[str, str] | None],
    groups: list[FailureGroup],
) -> list[FailureGroup]:
    """One group per root failure that dep_fail tasks descend from; they ran no try, so
    `count` is the number of tasks that did not run."""
    if not dep_fail:
        return []
    info: dict[int, tuple[str, str | None]] = {}
    for chunk in chunks(dep_fail):
        marks = ",".join("?" * len(chunk))
        for task_id, app, returned in ctx.conn.execute(
            f"SELECT task_id, task_func_name, task_time_returned FROM task WHERE run_id = ? "
            f"AND task_id IN ({marks})",
            (ctx.run_id, *chunk),
        ):
            info[task_id] = (app, returned)
    by_key: dict[tuple[str, str], list[int]] = {}
    for task_id in dep_fail:
        by_key.setdefault(_dependency_key(roots.get(task_id)), []).append(task_id)
    existing = {g.key: g for g in groups}
    made = []
    for key, task_ids in by_key.items():
        task_ids.sort()
        root_sig = key[1].split("] ", 1)[1] if "] " in key[1] else None
        moments = [m for m in (info.get(t, ("", None))[1] for t in task_ids) if m]
        group = existing.get(key)
        apps = sorted({info[t][0] for t in task_ids if t in info})
        if group is not None:  # join tries with the same root: one group
            group.tasks = sorted(set(group.tasks) | set(task_ids))
            group.apps = sorted(set(group.apps) | set(apps))
            group.count += len(task_ids)
            group.permanent += len(task_ids)
            continue
        made.append(
            FailureGroup(
                signature=key[1],
                cause=DEPENDENCY,
                exception_type="DependencyError",
                where=None,
                count=len(task_ids),
                tasks=task_ids,
                apps=apps,
                hosts=[],
                blocks=[],
                concentration=None,
                first=min(moments) if moments else None,
                last=max(moments) if moments else None,
                retried_then_succeeded=0,
                permanent=len(task_ids),
                unfinished=0,
                cpu_s_failed=0.0,
                example=FailureExample(
                    task_ids[0], None, "did not run: a dependency failed", None, None, None
                ),
                ancestor=root_sig,
            )
        )
    return made


def previous_run(ctx: RunContext) -> str | None:
    """The run of the same workflow that began last before this one."""
    row = ctx.conn.execute(
        "SELECT run_id FROM workflow WHERE workflow_name IS ? AND run_id != ? "
        "AND time_began < ? ORDER BY time_began DESC LIMIT 1",
        (ctx.run.workflow_name, ctx.run_id, ctx.run.time_began or ""),
    ).fetchone()
    return row[0] if row else None


def _with_history(ctx: RunContext, groups: list[FailureGroup]) -> list[FailureGroup]:
    """Mark each group new or recurring against the workflow's previous run, and add the
    previous run's groups that did not come back as gone (count 0, `previous_count` kept)."""
    from taskscope.store.analysis.context import run_context

    earlier = previous_run(ctx)
    if earlier is None:
        return groups
    before = {
        g.key: g
        for g in failure_groups(
            run_context(ctx.conn, earlier),
            read_files=False,
            with_history=False,
            with_examples=False,
        )
    }
    for group in groups:
        old = before.get(group.key)
        group.history = "recurring" if old is not None else "new"
        group.since_run = earlier
        group.previous_count = old.count if old is not None else 0
    seen = {g.key for g in groups}
    for key, old in before.items():
        if key in seen:
            continue
        groups.append(
            FailureGroup(
                signature=old.signature,
                cause=old.cause,
                exception_type=old.exception_type,
                where=old.where,
                count=0,
                tasks=[],
                apps=old.apps,
                hosts=[],
                blocks=[],
                concentration=None,
                first=None,
                last=None,
                retried_then_succeeded=0,
                permanent=0,
                unfinished=0,
                cpu_s_failed=0.0,
                example=None,
                ancestor=old.ancestor,
                history="gone",
                since_run=earlier,
                previous_count=old.count,
            )
        )
    return groups
