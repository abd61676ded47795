"""A run as Chrome Trace Event JSON, for ui.perfetto.dev and chrome://tracing.

- One complete event (``"ph": "X"``, ``ts`` and ``dur`` in microseconds since the run began)
  per try that ran, named after its app, on its worker's lane: the trace's process is the host
  (and block), its thread is the worker process that ran the try (the pid of the resource
  samples, which taskscope and Parsl take in the worker). When a process ran tries at the
  same time (thread executors share one pid) or no pid is recorded, tries are packed into
  numbered lanes so that no two slices on one thread overlap.
- Flow events (``s`` -> ``f``) from the end of each dependency's last try to the start of the
  dependent task's first try.
- Counter events for workers busy, CPU cores and memory in use (the store's exact
  time-weighted series over `COUNTER_BUCKETS` intervals) on a "run" process.

The trace is written as the tries are read, in start order: memory holds the lanes open at one
moment and about 12 bytes per task (the lane and end of each task's last try, for the flows),
never the events.
"""

from __future__ import annotations

import heapq
import json
import sqlite3
from array import array
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import TextIO

from taskscope.store import query
from taskscope.store.readonly import describe_database
from taskscope.store.resource_query import _span
from taskscope.store.timestamps import convention_label

COUNTER_BUCKETS = 1000
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
            self.emit({"ph": "M", "name": "process_name", "pid": pid, "tid": 0,
                       "args": {"name": label}})
            self.emit({"ph": "M", "name": "process_sort_index", "pid": pid, "tid": 0,
                       "args": {"sort_index": pid}})
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
            self.emit({"ph": "M", "name": "thread_name", "pid": proc.pid, "tid": tid,
                       "args": {"name": name}})
            self.emit({"ph": "M", "name": "thread_sort_index", "pid": proc.pid, "tid": tid,
                       "args": {"sort_index": tid}})
        heapq.heappush(busy, (end, lane))
        return lane


def _depends(text: str | None) -> list[int]:
    ids = []
    for part in (text or "").replace("[", "").replace("]", "").split(","):
        part = part.strip()
        if part.lstrip("-").isdigit():
            ids.append(int(part))
    return ids


def _tries_sql(info_has_failures: bool, info_has_resource: bool) -> str:
    pid = ("(SELECT r.psutil_process_pid FROM resource r WHERE r.run_id = y.run_id "
           "AND r.task_id = y.task_id AND r.try_id = y.try_id LIMIT 1)"
           if info_has_resource else "NULL")
    failure = ("(SELECT f.exception_type FROM taskscope_try_failure f WHERE f.run_id = y.run_id "
               "AND f.task_id = y.task_id AND f.try_id = y.try_id)"
               if info_has_failures else "NULL")
    return (
        "SELECT y.task_id, y.try_id, t.task_func_name, y.task_executor, "
        "COALESCE(y.hostname, ''), COALESCE(y.block_id, ''), y.task_try_time_launched, "
        "y.task_try_time_running, y.task_try_time_returned, y.task_fail_history, "
        f"t.task_depends, {pid}, {failure} "
        "FROM try y JOIN task t ON t.run_id = y.run_id AND t.task_id = y.task_id "
        "WHERE y.run_id = ? AND y.task_try_time_running IS NOT NULL "
        "ORDER BY y.task_try_time_running, y.task_id, y.try_id"
    )


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
    conn: sqlite3.Connection, run_id: str, out: TextIO,
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
    out.write(json.dumps({
        "run_id": run_id, "workflow_name": run.workflow_name, "time_began": began_text,
        "timestamps": convention_label(run.timestamp_convention),
        "ts": "microseconds since time_began", "generator": "taskscope export",
    }))
    out.write(',"traceEvents":[')
    emit({"ph": "M", "name": "process_name", "pid": RUN_PROCESS, "tid": 0,
          "args": {"name": f"run {run_id}"}})
    emit({"ph": "M", "name": "process_sort_index", "pid": RUN_PROCESS, "tid": 0,
          "args": {"sort_index": -1}})
    lanes = LaneMap(emit)
    ends = TaskEnds()
    done = 0
    if info.has("try") and info.has("task"):
        sql = _tries_sql(info.has("taskscope_try_failure"), info.has("resource"))
        for (task_id, try_id, app, executor, host, block, launched, running, returned,
             history, depends, pid, failure) in _rows(conn, sql, (run_id,)):
            start = _micros(running, began)
            if start is None:
                continue
            end = _micros(returned, began)
            unfinished = end is None
            end = max(start, run_end if end is None else end)
            # no sampled pid: the executor's name (join apps run on the kernel's own pool)
            worker = f"worker pid {pid}" if pid is not None else executor
            lane = lanes.lane(host or "unknown host", block, worker, start, end)
            trace_pid, tid = lanes.lanes[lane]
            args: dict = {"task_id": task_id, "try_id": try_id, "executor": executor}
            wait = _micros(launched, began)
            if wait is not None:
                args["queued_us"] = max(0, start - wait)
            if failure or history:
                args["failed"] = failure or str(history)[:300]
            if unfinished:
                args["unfinished"] = True
            emit({"ph": "X", "name": app, "cat": "try", "pid": trace_pid, "tid": tid,
                  "ts": start, "dur": end - start, "args": args})
            if ends.get(task_id) is None:  # the task's first try to run: its flows arrive
                for dep in _depends(depends):
                    source = ends.get(dep)
                    if source is None:
                        continue
                    source_lane, source_end = source
                    source_pid, source_tid = lanes.lanes[source_lane]
                    flow_id = f"{dep}->{task_id}"
                    emit({"ph": "s", "name": "dependency", "cat": "dependency", "id": flow_id,
                          "pid": source_pid, "tid": source_tid, "ts": max(0, source_end - 1)})
                    emit({"ph": "f", "bp": "e", "name": "dependency", "cat": "dependency",
                          "id": flow_id, "pid": trace_pid, "tid": tid, "ts": start})
            ends.set(task_id, lane, end)
            done += 1
            if done % 10_000 == 0:
                progress(done)
    usage = query.run_usage(conn, run_id, buckets=COUNTER_BUCKETS)
    if usage is not None:
        for index, moment in enumerate(usage.times):
            ts = _micros(moment, began)
            if ts is None:
                continue
            emit({"ph": "C", "name": "workers busy", "pid": RUN_PROCESS, "tid": 0, "ts": ts,
                  "args": {"busy": round(usage.workers_busy[index], 3)}})
            if usage.sample_count:
                emit({"ph": "C", "name": "memory in use (MiB)", "pid": RUN_PROCESS, "tid": 0,
                      "ts": ts, "args": {"resident": round(usage.memory_bytes[index] / 2**20, 1)}})
                emit({"ph": "C", "name": "CPU cores in use", "pid": RUN_PROCESS, "tid": 0,
                      "ts": ts, "args": {"cores": round(usage.cpu_cores[index], 3)}})
    out.write("\n]}\n")
    progress(done)
    return counts
