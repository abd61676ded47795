"""Turns the DataFlowKernel's task events into monitoring messages for a MonitoringHub.

Only built when ``Config(monitoring=...)`` is set: with monitoring off the kernel holds
``None`` instead of this object and no message is ever constructed.

With monitoring on, this runs for every task on the kernel's hot path, so it sends as few
messages as it can (see ``taskscope.store.messages``): a task's row with its ``pending``
state, a try's launch with its ``launched`` state, and at the end the try's return with the
final state and the task's final row. Four messages for a task that succeeds first time.
"""

from __future__ import annotations

import getpass
import json
import os
import platform
import socket
import sys
import time
from typing import Any

from taskscope.data_provider.files import File
from taskscope.dataflow.states import States
from taskscope.dataflow.taskrecord import TaskRecord, TryFailureRecord
from taskscope.monitoring import messages as m

# Column formats follow what Parsl writes, so tools written for Parsl's database (and
# parsl-visualize) read ours: '' for no stdout/stderr, str() of the inputs/outputs argument
# ('None' when absent), ids joined by commas.


def _std_name(spec: Any) -> str:
    """The task table's stdout/stderr text, as Parsl writes it: a File's URL, a path's
    ``os.fspath``, the path of a ``(path, mode)`` tuple; '' for none or a bad spec."""
    if spec is None:
        return ""
    if isinstance(spec, File):
        return spec.url
    if isinstance(spec, tuple) and spec:
        spec = spec[0]
    try:
        name = os.fspath(spec)
    except TypeError:  # not a path: the bash app fails it; the column stays readable
        return str(spec)
    return name.decode(errors="replace") if isinstance(name, bytes) else name


def _joined_ids(futures: Any) -> str | None:
    ids = [str(f.tid) for f in futures if hasattr(f, "tid")]
    return ",".join(ids) or None


def _spec_text(spec: dict[str, Any]) -> str | None:
    """A resource specification as JSON text, keys sorted (equal requests, equal text); a
    value JSON cannot hold is written as its str(), so an odd spec never costs the batch."""
    if not spec:
        return None
    try:
        return json.dumps(spec, sort_keys=True, default=str)
    except (TypeError, ValueError):  # keys that are not all strings, or a cycle
        return json.dumps({str(k): str(v) for k, v in spec.items()}, sort_keys=True)


def _seconds(walltime: Any) -> float | None:
    if isinstance(walltime, bool) or not isinstance(walltime, (int, float)):
        return None
    return float(walltime)


def default_workflow_name() -> str:
    """The user's script name, as Parsl names a workflow when the hub does not say."""
    script = sys.argv[0] if sys.argv and sys.argv[0] else ""
    return os.path.basename(script) or "unnamed"


class TaskEvents:
    """Sends one run's messages through ``hub.send`` (thread-safe, never blocking)."""

    def __init__(self, hub: Any, run_id: str):
        self.hub = hub
        self.run_id = run_id
        self._send = hub.send

    def workflow_start(
        self, run_dir: str, executor_labels: list[str], time_began: float, version: str
    ) -> None:
        name = getattr(self.hub, "workflow_name", None) or default_workflow_name()
        wf_version = getattr(self.hub, "workflow_version", None) or time.strftime(
            "%Y-%m-%d %H:%M:%S", time.localtime(time_began)
        )
        try:
            user = getpass.getuser()
        except Exception:  # no passwd entry in some containers  # noqa: BLE001
            user = str(os.getuid())
        self._send(
            m.WorkflowStart(
                run_id=self.run_id,
                workflow_name=name,
                workflow_version=str(wf_version),
                time_began=time_began,
                host=socket.gethostname(),
                user=user,
                rundir=os.path.abspath(run_dir),
                python_version=platform.python_version(),
                taskscope_version=version,
                executors=executor_labels,
                pid=os.getpid(),
                heartbeat_interval=float(getattr(self.hub, "heartbeat_interval", 10.0) or 10.0),
                launch_dir=os.getcwd(),
            )
        )

    def workflow_end(self, status: str, completed: int, failed: int) -> None:
        self._send(
            m.WorkflowEnd(
                run_id=self.run_id,
                time_completed=time.time(),
                status=status,
                tasks_completed_count=completed,
                tasks_failed_count=failed,
            )
        )

    def _task_row(self, r: TaskRecord, state: str | None, timestamp: float | None) -> m.TaskInfo:
        kw = r.kwargs
        if kw:
            inputs, outputs = str(kw.get("inputs")), str(kw.get("outputs"))
            stdout, stderr = _std_name(kw.get("stdout")), _std_name(kw.get("stderr"))
        else:
            inputs = outputs = "None"
            stdout = stderr = ""
        joins = [getattr(f, "tid", -1) for f in r.joins] if r.joins else None
        return m.TaskInfo(
            self.run_id,
            r.id,
            r.func_name,
            r.memoize,
            r.executor,
            r.time_invoked,
            r.depends_ids,
            r.hashsum,
            inputs,
            outputs,
            None,
            stdout,
            stderr,
            r.time_returned,
            r.fail_count,
            float(r.fail_cost),
            joins,
            state,
            r.try_id,
            timestamp,
        )

    def submitted(self, r: TaskRecord) -> None:
        """A new task: its row and its 'pending' state, and what it asked for, if anything."""
        row = self._task_row(r, "pending", r.time_invoked)
        walltime = r.kwargs.get("walltime") if r.kwargs else None
        if r.resource_specification or walltime is not None:
            row.resource_specification = _spec_text(r.resource_specification)
            row.walltime = _seconds(walltime)
        self._send(row)

    def launched(self, r: TaskRecord) -> None:
        """A try handed to its executor: the try's row and the 'launched' state."""
        t = r.try_time_launched
        self._send(
            m.TryInfo(
                self.run_id,
                r.id,
                r.try_id,
                r.executor,
                None,
                None,
                t,
                None,
                None,
                None,
                None,
                "launched",
                t,
            )
        )

    def finished(self, r: TaskRecord, state: States) -> None:
        """The task reached its final ``state``: the try's return (if this state ends a try
        that has not been reported yet) and the task's final row."""
        now = time.time()
        if state is States.exec_done:
            self.try_ended(r, state.name, now)
            self._send(self._task_row(r, None, None))
        else:
            self._send(self._task_row(r, state.name, now))

    def status(self, r: TaskRecord, state: States) -> None:
        self._send(
            m.TaskStatus(
                run_id=self.run_id,
                task_id=r.id,
                try_id=r.try_id,
                state=state.name,
                timestamp=time.time(),
            )
        )

    def try_ended(
        self, r: TaskRecord, state: str | None = None, timestamp: float | None = None
    ) -> None:
        """The try's result came back (with the state it led to, when known here)."""
        joins = _joined_ids(r.joins) if r.joins else None
        self._send(
            m.TryInfo(
                self.run_id,
                r.id,
                r.try_id,
                None,
                None,
                None,
                None,
                None,
                r.try_time_returned,
                ",".join(r.fail_history) or None,
                joins,
                state,
                timestamp,
            )
        )

    def try_failed(self, r: TaskRecord, f: TryFailureRecord) -> None:
        self._send(
            m.TryFailure(
                run_id=self.run_id,
                task_id=r.id,
                try_id=f.try_id,
                exception_type=type(f.exception).__name__,
                message=str(f.exception),
                traceback=f.traceback,
                exit_code=f.exit_code,
            )
        )

    def wrap(self, func: Any, r: TaskRecord) -> Any:
        return self.hub.wrap(
            func, run_id=self.run_id, task_id=r.id, try_id=r.try_id, executor_label=r.executor
        )
