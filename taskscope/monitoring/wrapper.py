"""The worker-side wrapper: what ``MonitoringHub.wrap`` returns.

A ``MonitoredCall`` is a plain picklable object carrying the function and where to report
(hub address and port, plus the hub's token so that a try running inside the hub's own
process skips the socket). On the worker it records the try's start, lets the process's
monitor attribute samples to it, runs the function, and records the end and a final sample,
whatever the function did. Exceptions pass through untouched.
"""

from __future__ import annotations

import functools
import os
import socket
import time
from collections.abc import Callable
from typing import Any

import msgspec

from taskscope.monitoring import sampler, sender
from taskscope.monitoring.messages import TaskStatus, TryInfo

HOSTNAME = socket.gethostname()

# Hubs living in this process, by token: tries run by a thread executor hand their messages
# straight to the hub's queue instead of going through a socket.
_local_hubs: dict[str, Any] = {}


def register_local_hub(token: str, hub: Any) -> None:
    _local_hubs[token] = hub


def unregister_local_hub(token: str) -> None:
    _local_hubs.pop(token, None)


class HubTarget(msgspec.Struct, frozen=True):
    """Where and how a wrapped try reports; travels with every task."""

    address: str
    port: int
    token: str
    hub_pid: int
    resource_monitoring_enabled: bool
    resource_monitoring_interval: float


def _sink_for(target: HubTarget) -> sampler.Sink:
    if target.hub_pid == os.getpid():
        hub = _local_hubs.get(target.token)
        if hub is not None:
            return hub
    return sender.sender_for(target.address, target.port)


def _block_id() -> str | None:
    # Set by executors that run blocks of workers (Parsl's name accepted too).
    return os.environ.get("TASKSCOPE_BLOCK_ID") or os.environ.get("PARSL_WORKER_BLOCK_ID")


class MonitoredCall:
    """``func`` wrapped to report one try (run_id, task_id, try_id) to the hub."""

    def __init__(
        self,
        func: Callable[..., Any],
        target: HubTarget,
        run_id: str,
        task_id: int,
        try_id: int,
        executor_label: str,
    ) -> None:
        self.func = func
        self.target = target
        self.run_id = run_id
        self.task_id = task_id
        self.try_id = try_id
        self.executor_label = executor_label
        functools.update_wrapper(self, func)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        target = self.target
        sink = _sink_for(target)
        monitor = sampler.process_monitor()
        monitor.add_sink(sink)
        run_id, task_id, try_id = self.run_id, self.task_id, self.try_id
        started = time.time()
        sink.send(TaskStatus(run_id, task_id, try_id, "running", started))
        sink.send(
            TryInfo(
                run_id,
                task_id,
                try_id,
                hostname=HOSTNAME,
                block_id=_block_id(),
                time_running=started,
            )
        )
        probe = None
        if target.resource_monitoring_enabled:
            probe = monitor.begin_try(
                run_id, task_id, try_id, target.resource_monitoring_interval, sink
            )
        try:
            return self.func(*args, **kwargs)
        finally:
            if probe is not None:
                sink.send(monitor.end_try(probe))
            ended = time.time()
            sink.send(TaskStatus(run_id, task_id, try_id, "running_ended", ended))
            sink.send(TryInfo(run_id, task_id, try_id, hostname=HOSTNAME, time_returned=ended))
            # Send before the result travels back, so the hub has the try's end by the time
            # the kernel sees the result (and close() has nothing left to wait for).
            sink.flush()

    def __reduce__(self) -> tuple:
        # Only what the worker needs: not the copied __doc__/__dict__/__wrapped__ attributes,
        # which would add hundreds of bytes to every task's payload.
        return (
            _rebuild,
            (self.func, self.target, self.run_id, self.task_id, self.try_id, self.executor_label),
        )

    def __repr__(self) -> str:
        return f"<monitored {self.func!r} task {self.task_id} try {self.try_id}>"


def _rebuild(*args: Any) -> MonitoredCall:
    return MonitoredCall(*args)
