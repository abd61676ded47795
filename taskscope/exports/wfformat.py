"""A run as a WfCommons WfFormat 1.5 instance (https://github.com/wfcommons/WfFormat).

- ``workflow.specification.tasks``: one per task: its app as ``name``, its id, ``parents`` (the
  tasks it depends on, and for a join app the tasks it joined) and ``children``.
- ``workflow.execution.tasks``: ``runtimeInSeconds`` (the run time of its tries, summed),
  ``executedAt`` (its first try's start), ``memoryInBytes`` (peak resident memory) and
  ``avgCPU`` (CPU time over run time, in percent) where resources were sampled, and the
  ``machines`` its last try ran on; ``workflow.execution.machines`` from the node table.
- Files are left out: the database records a task's file arguments as text, not their sizes,
  which WfFormat requires.

The document is written as it is read. Memory holds about 20 bytes per task and dependency
edge (the children of each task, built in a first pass), never the document.
"""

from __future__ import annotations

import json
import sqlite3
from array import array
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from typing import TextIO

from taskscope.store import query
from taskscope.store.id_lists import id_list
from taskscope.store.readonly import describe_database, written_by_taskscope
from taskscope.store.timestamps import parse_timestamp, seconds_between_sql
from taskscope.version import taskscope_version

SCHEMA_VERSION = "1.5"
FETCH = 5000
_CPU = "(COALESCE(psutil_process_time_user, 0) + COALESCE(psutil_process_time_system, 0))"


class EmptyRun(ValueError):
    """WfFormat needs at least one task."""


def _rows(conn: sqlite3.Connection, sql: str, params: tuple) -> Iterator[tuple]:
    cursor = conn.execute(sql, params)
    while batch := cursor.fetchmany(FETCH):
        yield from batch


def _iso(text: str | None, convention: str) -> str | None:
    moment = parse_timestamp(text)
    if moment is None:
        return None
    if convention == "utc":
        return moment.replace(tzinfo=timezone.utc).isoformat()
    return moment.isoformat()  # the workflow host's local time, offset unknown


class Graph:
    """Parents and children of every task, as compressed rows (CSR) of task indexes."""

    def __init__(self, task_ids: array, edges: array) -> None:
        # task_ids: the run's ids in ascending order; edges: flat (parent id, child id) pairs
        self.task_ids = task_ids
        n = len(task_ids)
        self._parents = self._rows(edges, n, by_child=True)
        self._children = self._rows(edges, n, by_child=False)

    def _position(self, task_id: int) -> int:
        from bisect import bisect_left

        i = bisect_left(self.task_ids, task_id)
        return i if i < len(self.task_ids) and self.task_ids[i] == task_id else -1

    def _rows(self, edges: array, n: int, by_child: bool) -> tuple[array, array]:
        """(offsets, members): members[offsets[i]:offsets[i+1]] are task i's parents or
        children, as task indexes."""
        owners, members_of = array("q"), array("q")
        counts = array("q", [0]) * (n + 1)
        for k in range(0, len(edges), 2):
            parent, child = self._position(edges[k]), self._position(edges[k + 1])
            if parent < 0 or child < 0 or parent == child:
                continue  # a dependency outside the run, or a malformed id
            owner, member = (child, parent) if by_child else (parent, child)
            counts[owner + 1] += 1
            owners.append(owner)
            members_of.append(member)
        for i in range(n):
            counts[i + 1] += counts[i]
        members = array("q", [0]) * len(owners)
        fill = array("q", counts[:n])
        for owner, member in zip(owners, members_of, strict=True):
            members[fill[owner]] = member
            fill[owner] += 1
        return counts, members

    def parents(self, i: int) -> list[int]:
        offsets, members = self._parents
        return sorted({self.task_ids[m] for m in members[offsets[i] : offsets[i + 1]]})

    def children(self, i: int) -> list[int]:
        offsets, members = self._children
        return sorted({self.task_ids[m] for m in members[offsets[i] : offsets[i + 1]]})


def _graph(conn: sqlite3.Connection, run_id: str, has_try: bool) -> Graph:
    task_ids = array("q")
    edges = array("q")
    for task_id, depends in _rows(
        conn,
        "SELECT task_id, task_depends FROM task WHERE run_id = ? ORDER BY task_id",
        (run_id,),
    ):
        task_ids.append(task_id)
        for dep in id_list(depends):
            edges.extend((dep, task_id))
    if has_try:
        for task_id, joins in _rows(
            conn,
            "SELECT task_id, task_joins FROM try WHERE run_id = ? "
            "AND task_joins IS NOT NULL AND task_joins != ''",
            (run_id,),
        ):
            for joined in id_list(joins):
                edges.extend((joined, task_id))
    return Graph(task_ids, edges)


def _machines(conn: sqlite3.Connection, run_id: str) -> list[dict]:
    if not describe_database(conn).has("node"):
        return []
    machines = {}
    for hostname, cpus, memory in conn.execute(
        "SELECT hostname, MAX(cpu_count), MAX(total_memory) FROM node WHERE run_id = ? "
        "GROUP BY hostname ORDER BY hostname LIMIT 100000",
        (run_id,),
    ):
        if not hostname:
            continue
        machine: dict = {"nodeName": hostname}
        if memory and int(memory) >= 1:
            machine["memoryInBytes"] = int(memory)
        if cpus and int(cpus) >= 1:
            machine["cpu"] = {"coreCount": int(cpus)}
        machines[hostname] = machine
    return list(machines.values())


def write_wfformat(
    conn: sqlite3.Connection,
    run_id: str,
    out: TextIO,
    progress: Callable[[int], None] = lambda done: None,
) -> int:
    """Write the WfFormat instance of `run_id` to `out`; returns the number of tasks."""
    info = describe_database(conn)
    summary = query.run_summary(conn, run_id, with_durations=False, with_counts=False)
    if summary is None:
        raise LookupError(f"no run {run_id!r}")
    run = summary.run
    convention = run.timestamp_convention
    has_try, has_resource = info.has("try"), info.has("resource")
    graph = _graph(conn, run_id, has_try)
    if not len(graph.task_ids):
        raise EmptyRun(f"run {run_id} has no tasks; a WfFormat instance needs at least one")
    ours = written_by_taskscope(conn, info, run_id)
    makespan = run.duration_s if run.duration_s is not None else 0.0
    header = {
        "name": run.workflow_name or f"run {run_id}",
        "description": f"taskscope export of run {run_id}"
        + (f" ({run.workflow_name} {run.workflow_version})" if run.workflow_version else ""),
        "createdAt": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "schemaVersion": SCHEMA_VERSION,
        "runtimeSystem": {
            "name": "taskscope" if ours else "parsl",
            "version": (summary.taskscope_version or taskscope_version()) if ours else "unknown",
        },
    }
    text = json.dumps(header, indent=None)
    out.write(text[:-1] + ',"workflow":{"specification":{"tasks":[')
    # The same query, in the same order, as the graph's: row i is task index i.
    for i, (task_id, app) in enumerate(
        _rows(
            conn,
            "SELECT task_id, task_func_name FROM task WHERE run_id = ? ORDER BY task_id",
            (run_id,),
        )
    ):
        if i >= len(graph.task_ids) or graph.task_ids[i] != task_id:
            break  # a task written since the first pass (a live run): not in this instance
        spec = {
            "name": app or "task",
            "id": str(task_id),
            "parents": [str(p) for p in graph.parents(i)],
            "children": [str(c) for c in graph.children(i)],
        }
        out.write(("," if i else "") + "\n" + json.dumps(spec))
    execution = {
        "makespanInSeconds": round(makespan, 6),
        "executedAt": _iso(run.time_began, convention) or "",
    }
    out.write('\n]},\n"execution":' + json.dumps(execution)[:-1] + ',"tasks":[')
    tries = _try_rows(conn, run_id) if has_try else iter(())
    samples = _resource_rows(conn, run_id, ours) if has_resource else iter(())
    next_try = next(tries, None)
    next_sample = next(samples, None)
    for i, task_id in enumerate(graph.task_ids):
        while next_try is not None and next_try[0] < task_id:
            next_try = next(tries, None)
        while next_sample is not None and next_sample[0] < task_id:
            next_sample = next(samples, None)
        entry: dict[str, object] = {"id": str(task_id)}
        runtime = 0.0
        if next_try is not None and next_try[0] == task_id:
            _, started, run_s, hostname = next_try
            runtime = round(max(run_s or 0.0, 0.0), 6)
            if started := _iso(started, convention):
                entry["executedAt"] = started
            if hostname:
                entry["machines"] = [hostname]
        if next_sample is not None and next_sample[0] == task_id:
            _, peak, cpu = next_sample
            if peak is not None:
                entry["memoryInBytes"] = int(peak)
            if cpu is not None and runtime > 0:
                entry["avgCPU"] = round(100.0 * max(cpu, 0.0) / runtime, 2)
        entry["runtimeInSeconds"] = runtime
        out.write(("," if i else "") + "\n" + json.dumps(entry))
        if i % 10_000 == 0:
            progress(i)
    machines = _machines(conn, run_id)
    out.write("\n]")
    if machines:
        out.write(',"machines":' + json.dumps(machines))
    out.write("}}}\n")
    progress(len(graph.task_ids))
    return len(graph.task_ids)


def _try_rows(conn: sqlite3.Connection, run_id: str) -> Iterator[tuple]:
    """(task_id, first start, summed run seconds, host of the last try), by task id."""
    run_s = seconds_between_sql("task_try_time_running", "task_try_time_returned")
    return _rows(
        conn,
        f"SELECT task_id, MIN(task_try_time_running), SUM({run_s}), "
        "(SELECT z.hostname FROM try z WHERE z.run_id = y.run_id AND z.task_id = y.task_id "
        "ORDER BY z.try_id DESC LIMIT 1) "
        "FROM try y WHERE run_id = ? GROUP BY task_id ORDER BY task_id",
        (run_id,),
    )


def _resource_rows(conn: sqlite3.Connection, run_id: str, per_try_cpu: bool) -> Iterator[tuple]:
    """(task_id, peak resident bytes, CPU seconds over its tries), by task id."""
    floor = "0" if per_try_cpu else f"MIN({_CPU})"
    return _rows(
        conn,
        "SELECT task_id, MAX(peak), SUM(cpu) FROM (SELECT task_id, "
        f"MAX(psutil_process_memory_resident) AS peak, MAX({_CPU}) - {floor} AS cpu "
        "FROM resource WHERE run_id = ? GROUP BY task_id, try_id) GROUP BY task_id "
        "ORDER BY task_id",
        (run_id,),
    )
