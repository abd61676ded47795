"""A run as Chrome Trace Event JSON, for ui.perfetto.dev and chrome://tracing.

- One complete event (``"ph": "X"``, ``ts`` and ``dur`` in microseconds since the run began)
  per try that ran, named after its app, on its worker's lane: the trace's process is the host
  (and block), its thread is the worker that ran the try. Times are the worker's own
  (running -> running_ended): from the writer's ``taskscope_try_run`` for taskscope's runs
  (which also names the worker), else from the status history, with the pid of the try's
  resource samples as the worker (Parsl's databases). Should one worker still show two tries
  at once, or no worker be recorded (a thread pool), tries are packed into numbered lanes so
  that no two slices on one thread overlap.
- Flow events (``s`` -> ``f``) from the end of each dependency's last try to the start of the
  dependent task's first try.
- Counter events on a "run" process: workers busy (summed from the slices themselves), CPU
  cores and memory in use (the store's time-weighted series), over `COUNTER_BUCKETS` intervals.

The trace is written as the tries are read, in start order: memory holds the lanes open at one
moment and about 12 bytes per task (the lane and end of each task's last try, for the flows),
never the events.
"""

from __future__ import annotations

import calendar
import heapq
import json
import sqlite3
from array import array
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import TextIO

from taskscope.store import query
from taskscope.store.id_lists import id_list
from taskscope.store.readonly import describe_database
from taskscope.store.records import DatabaseInfo
from taskscope.store.resource_query import _span
from taskscope.store.timestamps import convention_label

COUNTER_BUCKETS = 1000
INTERNAL_EXECUTOR_LABELS = frozenset({"_taskscope_internal", "_parsl_internal"})
RUN_PROCESS = 0  # trace pid of the counters
FETCH = 1000
_DENSE_SLACK = 1 << 16


def _micros(text: str | None, began: datetime) -> int | None:
    """Microseconds from `began` to a stored timestamp (exact: no floating point)."""
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(str(text).strip())
    except ValueError:
        return None
    delta = moment.replace(tzinfo=None) - began
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


class TaskEnds:
    """Task id -> (lane, end in µs) of its latest try, at 12 bytes a task for dense ids."""

    def __init__(self) -> None:
        self._lane = array("i")
        self._end = array("q")
        self._sparse: dict[int, tuple[int, int]] = {}

    def set(self, task_id: int, lane: int, end: int) -> None:
        if 0 <= task_id < len(self._lane) + _DENSE_SLACK:
            if task_id >= len(self._lane):
                grow = task_id + 1 - len(self._lane)
                self._lane.extend([-1] * grow)
                self._end.extend([0] * grow)
            self._lane[task_id] = lane
            self._end[task_id] = end
        else:
            self._sparse[task_id] = (lane, end)

    def get(self, task_id: int) -> tuple[int, int] | None:
        if 0 <= task_id < len(self._lane):
            lane = self._lane[task_id]
            return None if lane < 0 else (lane, self._end[task_id])
        return self._sparse.get(task_id)


@dataclass
class _Process:
    pid: int
    label: str
    threads: dict[str, int]  # worker key -> number of lanes it has


class LaneMap:
    """Lanes (trace pid, tid) for tries read in start order, so slices never overlap."""

    def __init__(self, emit: Callable[[dict], None]) -> None:
        self.emit = emit
        self.processes: dict[tuple[str, str], _Process] = {}
        # (trace pid, worker key) -> heap of (end, tid) of lanes, and lanes free now
        self.busy: dict[tuple[int, str], list[tuple[int, int]]] = {}
        self.free: dict[tuple[int, str], list[int]] = {}
        self.lanes: list[tuple[int, int]] = []  # lane index -> (pid, tid)
        self.next_tid = 1

    def process(self, host: str, block: str) -> _Process:
        key = (host, block)
        found = self.processes.get(key)
        if found is None:
            pid = len(self.processes) + 1
            label = host if not block else f"{host} (block {block})"
            found = self.processes[key] = _Process(pid, label, {})
            self.emit(
                {"ph": "M", "name": "process_name", "pid": pid, "tid": 0, "args": {"name": label}}
            )
            self.emit(
                {
                    "ph": "M",
                    "name": "process_sort_index",
                    "pid": pid,
                    "tid": 0,
                    "args": {"sort_index": pid},
                }
            )
        return found

    def lane(self, host: str, block: str, worker: str, start: int, end: int) -> int:
        """The lane index for a try of `worker` running from `start` to `end`."""
        proc = self.process(host, block)
        key = (proc.pid, worker)
        busy = self.busy.setdefault(key, [])
        free = self.free.setdefault(key, [])
        while busy and busy[0][0] <= start:
            heapq.heappush(free, heapq.heappop(busy)[1])
        if free:
            lane = heapq.heappop(free)
        else:
            lane = len(self.lanes)
            number = proc.threads.get(worker, 0)
            proc.threads[worker] = number + 1
            tid = self.next_tid
            self.next_tid += 1
            self.lanes.append((proc.pid, tid))
            name = worker if number == 0 else f"{worker} #{number + 1}"
            self.emit(
                {
                    "ph": "M",
                    "name": "thread_name",
                    "pid": proc.pid,
                    "tid": tid,
                    "args": {"name": name},
                }
            )
            self.emit(
                {
                    "ph": "M",
                    "name": "thread_sort_index",
                    "pid": proc.pid,
                    "tid": tid,
                    "args": {"sort_index": tid},
                }
            )
        heapq.heappush(busy, (end, lane))
        return lane


def _failure_sql(info: DatabaseInfo, alias: str) -> str:
    if not info.has("taskscope_try_failure"):
        return "NULL"
    return (
        f"(SELECT f.exception_type FROM taskscope_try_failure f WHERE f.run_id = {alias}.run_id "
        f"AND f.task_id = {alias}.task_id AND f.try_id = {alias}.try_id)"
    )


def _worker_clock_sql(info: DatabaseInfo) -> str:
    """Tries from the writer's record of them on their workers' clocks (taskscope's runs):
    start and end as epoch seconds, and the worker that ran each."""
    return (
        "SELECT r.task_id, r.try_id, t.task_func_name, COALESCE(y.task_executor, ''), "
        "COALESCE(y.hostname, ''), COALESCE(y.block_id, ''), y.task_try_time_launched, "
        "r.time_running, r.time_ended, y.task_fail_history, t.task_depends, r.worker, "
        f"{_failure_sql(info, 'r')} "
        "FROM taskscope_try_run r JOIN task t ON t.run_id = r.run_id AND t.task_id = r.task_id "
        "LEFT JOIN try y ON y.run_id = r.run_id AND y.task_id = r.task_id AND y.try_id = r.try_id "
        "WHERE r.run_id = ? ORDER BY r.time_running, r.task_id, r.try_id"
    )


def _status_clock_sql(info: DatabaseInfo) -> str:
    """Tries from the try table (Parsl's databases, older taskscope ones): from running to
    the worker's running_ended status when there is one (Parsl records it too), else to the
    kernel's return; the worker is the pid of the try's resource samples."""
    pid = (
        "(SELECT 'worker pid ' || r.psutil_process_pid FROM resource r WHERE r.run_id = y.run_id "
        "AND r.task_id = y.task_id AND r.try_id = y.try_id LIMIT 1)"
        if info.has("resource")
        else "NULL"
    )
    ended = "y.task_try_time_returned"
    if info.has("status"):
        ended = (
            "COALESCE((SELECT MIN(s.timestamp) FROM status s WHERE s.task_id = y.task_id "
            "AND s.run_id = y.run_id AND s.task_status_name = 'running_ended' "
            "AND s.try_id = y.try_id), y.task_try_time_returned)"
        )
    return (
        "SELECT y.task_id, y.try_id, t.task_func_name, y.task_executor, "
        "COALESCE(y.hostname, ''), COALESCE(y.block_id, ''), y.task_try_time_launched, "
        f"y.task_try_time_running, {ended}, y.task_fail_history, t.task_depends, {pid}, "
        f"{_failure_sql(info, 'y')} "
        "FROM try y JOIN task t ON t.run_id = y.run_id AND t.task_id = y.task_id "
        "WHERE y.run_id = ? AND y.task_try_time_running IS NOT NULL "
        "ORDER BY y.task_try_time_running, y.task_id, y.try_id"
    )


def _on_worker_clock(conn: sqlite3.Connection, info: DatabaseInfo, run_id: str) -> bool:
    if not info.has("taskscope_try_run"):
        return False
    return (
        conn.execute(
            "SELECT 1 FROM taskscope_try_run WHERE run_id = ? LIMIT 1", (run_id,)
        ).fetchone()
        is not None
    )


class BusyBuckets:
    """Workers busy, averaged over equal buckets of the run, summed from the slices as they
    are written (O(1) a slice: partial end buckets plus a difference array between)."""

    def __init__(self, span_us: int, buckets: int) -> None:
        self.n = buckets
        self.width = max(span_us, 1) / buckets
        self.partial = [0.0] * buckets
        self.diff = [0.0] * (buckets + 1)

    def add(self, start: int, end: int) -> None:
        horizon = self.width * self.n
        s, e = max(float(start), 0.0), min(float(end), horizon)
        if e <= s:
            return
        w = self.width
        first, last = min(int(s // w), self.n - 1), min(int(e // w), self.n - 1)
        if first == last:
            self.partial[first] += e - s
            return
        self.partial[first] += (first + 1) * w - s
        self.partial[last] += e - last * w
        self.diff[first + 1] += 1
        self.diff[last] -= 1

    def series(self) -> list[tuple[int, float]]:
        """(bucket start in µs, average busy) for every bucket."""
        running, result = 0.0, []
        for b in range(self.n):
            running += self.diff[b]
            result.append(
                (round(b * self.width), (self.partial[b] + running * self.width) / self.width)
            )
        return result


def try_count(conn: sqlite3.Connection, run_id: str) -> int:
    """Tries of the run that started running: one "X" event each."""
    if not describe_database(conn).has("try"):
        return 0
    return conn.execute(
        "SELECT COUNT(*) FROM try WHERE run_id = ? AND task_try_time_running IS NOT NULL",
        (run_id,),
    ).fetchone()[0]


def _rows(conn: sqlite3.Connection, sql: str, params: tuple) -> Iterator[tuple]:
    cursor = conn.execute(sql, params)
    while batch := cursor.fetchmany(FETCH):
        yield from batch


def write_chrome_trace(
    conn: sqlite3.Connection,
    run_id: str,
    out: TextIO,
    progress: Callable[[int], None] = lambda done: None,
) -> dict[str, int]:
    """Write the trace of `run_id` to `out`; returns how many events of each kind."""
    info = describe_database(conn)
    run = query.get_run(conn, run_id, with_counts=False)
    if run is None:
        raise LookupError(f"no run {run_id!r}")
    began_text, ended_text = _span(conn, run_id)
    began = datetime.fromisoformat(began_text) if began_text else datetime(1970, 1, 1)
    run_end = _micros(ended_text, began) or 0
    counts = {"X": 0, "flow": 0, "C": 0, "M": 0}
    first = [True]

    def emit(event: dict) -> None:
        out.write("\n" if first[0] else ",\n")
        first[0] = False
        out.write(json.dumps(event, separators=(",", ":")))
        kind = event["ph"]
        counts["flow" if kind in ("s", "f") else kind] += 1

    out.write('{"displayTimeUnit":"ms","otherData":')
    out.write(
        json.dumps(
            {
                "run_id": run_id,
                "workflow_name": run.workflow_name,
                "time_began": began_text,
                "timestamps": convention_label(run.timestamp_convention),
                "ts": "microseconds since time_began",
                "generator": "taskscope export",
            }
        )
    )
    out.write(',"traceEvents":[')
    emit(
        {
            "ph": "M",
            "name": "process_name",
            "pid": RUN_PROCESS,
            "tid": 0,
            "args": {"name": f"run {run_id}"},
        }
    )
    emit(
        {
            "ph": "M",
            "name": "process_sort_index",
            "pid": RUN_PROCESS,
            "tid": 0,
            "args": {"sort_index": -1},
        }
    )
    lanes = LaneMap(emit)
    ends = TaskEnds()
    flows = 0
    busy = BusyBuckets(run_end, COUNTER_BUCKETS)
    done = 0
    if info.has("try") and info.has("task"):
        worker_clock = _on_worker_clock(conn, info, run_id)
        sql = _worker_clock_sql(info) if worker_clock else _status_clock_sql(info)
        began_epoch = calendar.timegm(began.timetuple()) + began.microsecond / 1e6
        for (
            task_id,
            try_id,
            app,
            executor,
            host,
            block,
            launched,
            running,
            ended,
            history,
            depends,
            worker,
            failure,
        ) in _rows(conn, sql, (run_id,)):
            if worker_clock:
                start = round((running - began_epoch) * 1e6)
                end = None if ended is None else round((ended - began_epoch) * 1e6)
            else:
                start, end = _micros(running, began), _micros(ended, began)
            if start is None:
                continue
            unfinished = end is None
            end = max(start, run_end if end is None else end)
            # no worker recorded: the executor's name (join apps run on the kernel's own pool)
            lane = lanes.lane(
                host or "unknown host", block, worker or executor or "worker", start, end
            )
            trace_pid, tid = lanes.lanes[lane]
            args: dict = {"task_id": task_id, "try_id": try_id, "executor": executor}
            wait = _micros(launched, began)
            if wait is not None:
                args["queued_us"] = max(0, start - wait)
            if failure or history:
                args["failed"] = failure or str(history)[:300]
            if unfinished:
                args["unfinished"] = True
            emit(
                {
                    "ph": "X",
                    "name": app,
                    "cat": "try",
                    "pid": trace_pid,
                    "tid": tid,
                    "ts": start,
                    "dur": end - start,
                    "args": args,
                }
            )
            if executor not in INTERNAL_EXECUTOR_LABELS:
                busy.add(start, end)
            if ends.get(task_id) is None:  # the task's first try to run: its flows arrive
                for dep in id_list(depends):
                    source = ends.get(dep)
                    if source is None:
                        continue
                    source_lane, source_end = source
                    source_pid, source_tid = lanes.lanes[source_lane]
                    # integer ids (what every trace viewer takes), one per edge
                    flows += 1
                    flow_id = flows
                    emit(
                        {
                            "ph": "s",
                            "name": "dependency",
                            "cat": "dependency",
                            "id": flow_id,
                            "pid": source_pid,
                            "tid": source_tid,
                            "ts": max(0, source_end - 1),
                            "args": {"from_task": dep, "to_task": task_id},
                        }
                    )
                    emit(
                        {
                            "ph": "f",
                            "bp": "e",
                            "name": "dependency",
                            "cat": "dependency",
                            "id": flow_id,
                            "pid": trace_pid,
                            "tid": tid,
                            "ts": start,
                        }
                    )
            ends.set(task_id, lane, end)
            done += 1
            if done % 10_000 == 0:
                progress(done)
        for ts, value in busy.series():
            emit(
                {
                    "ph": "C",
                    "name": "workers busy",
                    "pid": RUN_PROCESS,
                    "tid": 0,
                    "ts": ts,
                    "args": {"busy": round(value, 3)},
                }
            )
    usage = query.run_usage(conn, run_id, buckets=COUNTER_BUCKETS, parts=("samples",))
    if usage is not None and usage.sample_count:
        for index, moment in enumerate(usage.times):
            at = _micros(moment, began)
            if at is None:
                continue
            emit(
                {
                    "ph": "C",
                    "name": "memory in use (MiB)",
                    "pid": RUN_PROCESS,
                    "tid": 0,
                    "ts": at,
                    "args": {"resident": round(usage.memory_bytes[index] / 2**20, 1)},
                }
            )
            emit(
                {
                    "ph": "C",
                    "name": "CPU cores in use",
                    "pid": RUN_PROCESS,
                    "tid": 0,
                    "ts": at,
                    "args": {"cores": round(usage.cpu_cores[index], 3)},
                }
            )
    out.write("\n]}\n")
    progress(done)
    return counts
