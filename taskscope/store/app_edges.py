"""The writer's counts of edges between apps (``taskscope_app_edge``), kept as tasks arrive
so the dashboard's app-level graph is one small read instead of a pass over every task.

An edge is counted once per task from what the kernel says about it: its first ``TaskInfo``
names its app and its dependencies; the first ``TryInfo`` of a join app that names its joins
gives the join edges. Counting needs the app of every task seen so far in the run, for the
whole run: ``TaskApps`` keeps it at about four bytes a task (a dict of task id to app name
costs about 130 MB per million tasks).
"""

from __future__ import annotations

import sqlite3
from array import array
from typing import Any

from taskscope.store.messages import TaskInfo, TryInfo

UPSERT_APP_EDGE = """
INSERT INTO taskscope_app_edge (run_id, source_app, target_app, kind, count)
VALUES (?, ?, ?, ?, ?)
ON CONFLICT (run_id, source_app, target_app, kind) DO UPDATE SET
    count = taskscope_app_edge.count + excluded.count"""

INSERT_DEPENDENT = """
INSERT OR IGNORE INTO taskscope_dependent (run_id, task_id, dependent_id) VALUES (?, ?, ?)"""

# Task ids of a run are dense (the kernel counts from 0, and sends them nearly in order). The
# array grows to reach an id only while it stays at least half full, or for a small gap; any
# other id (sparse or huge: a foreign or malformed message) goes to a dict, so memory follows
# the number of ids stored, whatever ids arrive (4,000 ids 65,535 apart once cost 1 GB).
_DENSE_SLACK = 1024


class TaskApps:
    """Task id -> app name for one run."""

    __slots__ = ("_dense", "_filled", "_index", "_names", "_sparse")

    def __init__(self) -> None:
        self._names: list[str] = []
        self._index: dict[str, int] = {}
        self._dense = array("I")  # app index + 1, 0 when unknown
        self._sparse: dict[int, int] = {}
        self._filled = 0  # ids set in the array

    @classmethod
    def load(cls, conn: sqlite3.Connection, run_id: str) -> TaskApps:
        """The map of one run as its task rows hold it (empty for a new run)."""
        apps = cls()
        rows = conn.execute("SELECT task_id, task_func_name FROM task WHERE run_id = ?", (run_id,))
        for task_id, app in rows:
            apps.set(task_id, app)
        return apps

    def get(self, task_id: int) -> str | None:
        if 0 <= task_id < len(self._dense):
            slot = self._dense[task_id]
            if slot:
                return self._names[slot - 1]
        # Not in the array: an id that went to the dict before the array grew past it.
        sparse_slot = self._sparse.get(task_id)
        return None if sparse_slot is None else self._names[sparse_slot - 1]

    def set(self, task_id: int, app: str) -> None:
        slot = self._index.get(app)
        if slot is None:
            self._names.append(app)
            slot = self._index[app] = len(self._names)
        dense = self._dense
        size = len(dense)
        if 0 <= task_id < size:
            if not dense[task_id]:
                self._filled += 1
            dense[task_id] = slot
        elif task_id >= 0 and (
            task_id < size + _DENSE_SLACK or 2 * (self._filled + 1) >= task_id + 1
        ):
            dense.frombytes(bytes(dense.itemsize * (task_id + 1 - size)))
            dense[task_id] = slot
            self._filled += 1
        else:
            self._sparse[task_id] = slot


class AppEdgeBatch:
    """One batch's contribution to taskscope_app_edge: edges between apps, counted once per
    task from what the kernel says about it.

    The task -> app maps of earlier batches (``apps``, per run) and the joining tasks already
    counted (``joined``) are only extended by ``keep``, after the batch is written: a batch
    the database rejects is replayed message by message, and must count its edges again."""

    __slots__ = ("apps", "conn", "counts", "dependents", "joined", "new_apps", "new_joined")

    def __init__(
        self,
        apps: dict[str, TaskApps],
        joined: dict[str, set[int]],
        conn: sqlite3.Connection | None = None,
    ) -> None:
        self.apps = apps
        self.joined = joined
        # With it, a run this writer has not seen yet starts from the tasks already in the
        # database (a restarted writer, or a replay of a killed run's spool), so their
        # dependents' edges are counted too.
        self.conn = conn
        self.new_apps: dict[tuple[str, int], str] = {}
        self.new_joined: set[tuple[str, int]] = set()
        self.counts: dict[tuple[str, str, str, str], int] = {}
        # (run, task, dependent) rows of taskscope_dependent: who depends on or joins whom.
        self.dependents: list[tuple[str, int, int]] = []

    def _app(self, run_id: str, task_id: int) -> str | None:
        app = self.new_apps.get((run_id, task_id))
        if app is None:
            known = self.apps.get(run_id)
            if known is None and self.conn is not None:
                # Committed rows only, so this stays true if the batch is rolled back.
                known = self.apps[run_id] = TaskApps.load(self.conn, run_id)
            if known is not None:
                app = known.get(task_id)
        return app

    def _add(self, run_id: str, source: str, target: str, kind: str) -> None:
        key = (run_id, source, target, kind)
        self.counts[key] = self.counts.get(key, 0) + 1

    def task(self, m: TaskInfo) -> None:
        """The first TaskInfo of a task names its app and its dependencies (the task row keeps
        the first ``task_depends`` too); later ones for the same task add nothing."""
        run_id = m.run_id
        if self._app(run_id, m.task_id) is not None:
            return
        self.new_apps[(run_id, m.task_id)] = m.func_name
        self.dependents.extend((run_id, dep, m.task_id) for dep in m.depends)
        for dep in m.depends:
            source = self._app(run_id, dep)
            # A dependency is submitted, and its TaskInfo sent on the same ordered stream,
            # before its dependent, so it is known; one that is not has no task row either,
            # and the SQL that reads task_depends would not count it: skip it the same way.
            if source is not None:
                self._add(run_id, source, m.func_name, "depends")

    def joins(self, m: TryInfo) -> None:
        """The tasks a join app waited for, counted once per joining task."""
        run_id, task_id, joins = m.run_id, m.task_id, m.joins
        if not joins:
            return
        if (run_id, task_id) in self.new_joined or task_id in self.joined.get(run_id, ()):
            return
        try:
            ids = [int(part) for part in joins.split(",")]
        except ValueError:  # not a list of ids: the SQL fallback skips it as well
            return
        target = self._app(run_id, task_id)
        if target is None:  # the kernel sends a task's TaskInfo before any TryInfo of it
            return
        self.new_joined.add((run_id, task_id))
        self.dependents.extend((run_id, joined, task_id) for joined in ids)
        for joined in ids:
            source = self._app(run_id, joined)
            if source is not None:  # as for dependencies: an unknown task has no row
                self._add(run_id, source, target, "join")

    def rows(self) -> list[tuple[Any, ...]]:
        return [(*key, n) for key, n in self.counts.items()]

    def keep(self) -> None:
        """The batch is written: remember its tasks for the batches that follow."""
        for (run_id, task_id), app in self.new_apps.items():
            known = self.apps.get(run_id)
            if known is None:
                known = self.apps[run_id] = TaskApps()
            known.set(task_id, app)
        for run_id, task_id in self.new_joined:
            self.joined.setdefault(run_id, set()).add(task_id)
