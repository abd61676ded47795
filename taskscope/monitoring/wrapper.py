"""The worker-side wrapper: what ``MonitoringHub.wrap`` returns.

A ``MonitoredCall`` is a plain picklable object carrying the function and where to report
(hub address and port, plus the hub's token so that a try running inside the hub's own
process skips the socket). On the worker it records the try's start, lets the process's
monitor attribute samples to it, runs the function, and records the end and a final sample,
whatever the function did. Exceptions pass through untouched.

One message per short try: the start (a ``TryRun`` without an end) waits in the process's
buffer, and when the try ends before it was sent, the complete ``TryRun`` takes its place.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import msgspec

from taskscope.monitoring import sampler, sender
from taskscope.monitoring.messages import TryRun
from taskscope.ship_once import ShipOnce

HOSTNAME = socket.gethostname()

# Hubs living in this process, by token: tries run by a thread executor hand their messages
# straight to the hub's queue instead of going through a socket.
_local_hubs: dict[str, Any] = {}


def register_local_hub(token: str, hub: Any) -> None:
    _local_hubs[token] = hub


def unregister_local_hub(token: str) -> None:
    _local_hubs.pop(token, None)


class HubTarget(msgspec.Struct, frozen=True, array_like=True, weakref=True, eq=False):
    """Where and how a wrapped try reports. HighThroughputExecutor sends it to each worker
    once and then refers to it by a small key (it is a ``ShipOnce`` type, registered below)."""

    run_id: str
    address: str
    port: int
    token: str
    hub_pid: int
    resource_monitoring_enabled: bool
    resource_monitoring_interval: float
    # The run's secret: workers seal their frames with it (monitoring/auth.py). It travels
    # with the tasks, once per worker, never on a command line.
    secret: str = ""

    def __repr__(self) -> str:  # never the secret, in a log, a traceback or Dask's dashboard
        return (
            f"HubTarget(run_id={self.run_id!r}, address={self.address!r}, "
            f"port={self.port!r}, secret=<hidden>)"
        )

    def __rich_repr__(self):
        yield "run_id", self.run_id
        yield "address", self.address
        yield "port", self.port


ShipOnce.register(HubTarget)


def _sink_for(target: HubTarget) -> sampler.Sink:
    if target.hub_pid == os.getpid():
        hub = _local_hubs.get(target.token)
        if hub is not None:
            return hub
    return sender.sender_for(target.address, target.port, target.run_id, target.secret)


_block: tuple[int, str | None] = (-1, None)  # (pid, block id), read once per process


def _block_id() -> str | None:
    # Set by executors that run blocks of workers (Parsl's name accepted too).
    global _block
    pid = os.getpid()
    if _block[0] != pid:
        _block = (
            pid,
            os.environ.get("TASKSCOPE_BLOCK_ID") or os.environ.get("PARSL_WORKER_BLOCK_ID"),
        )
    return _block[1]


_worker: tuple[int, str | None] = (-1, None)  # (pid, worker id), read once per process


def _worker_id() -> str:
    """Which worker runs this try: the executor's worker id when it names one (a
    HighThroughputExecutor worker process), else host:pid, plus the thread when tries run on
    threads of one process (a thread pool, a Dask worker), so that one id never runs two
    tries at once."""
    global _worker
    pid = os.getpid()
    if _worker[0] != pid:
        _worker = (pid, os.environ.get("TASKSCOPE_WORKER_ID"))
    named = _worker[1]
    if named:
        return named
    thread = threading.current_thread()
    if thread is threading.main_thread():
        return f"{HOSTNAME}:{pid}"
    return f"{HOSTNAME}:{pid}/{thread.name}"


class MonitoredCall:
    """``func`` wrapped to report one try (task_id, try_id) of the target's run to the hub."""

    __slots__ = ("func", "target", "task_id", "try_id")

    def __init__(self, func: Callable[..., Any], target: HubTarget, task_id: int, try_id: int):
        self.func = func
        self.target = target
        self.task_id = task_id
        self.try_id = try_id

    # What code that inspects the function (names in logs, signatures in error messages)
    # would otherwise find on a functools.update_wrapper copy, which costs every task µs.
    @property
    def __wrapped__(self) -> Callable[..., Any]:
        return self.func

    @property
    def __name__(self) -> str:
        return getattr(self.func, "__name__", "task")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        target = self.target
        sink = _sink_for(target)
        buffer = sink.buffer
        run_id, task_id, try_id = target.run_id, self.task_id, self.try_id
        block = _block_id()
        worker = _worker_id()
        started = time.time()
        ticket = buffer.add_replaceable(
            TryRun(run_id, task_id, try_id, HOSTNAME, block, started, worker=worker)
        )
        probe = monitor = None
        if target.resource_monitoring_enabled:
            monitor = sampler.process_monitor()
            probe = monitor.begin_try(
                run_id, task_id, try_id, target.resource_monitoring_interval, sink
            )
        try:
            return self.func(*args, **kwargs)
        finally:
            sample = monitor.end_try(probe) if monitor is not None and probe is not None else None
            done = TryRun(
                run_id, task_id, try_id, HOSTNAME, block, started, time.time(), sample, worker
            )
            if not buffer.replace(ticket, done):
                buffer.add(done)
            sink.try_ended()

    def __reduce__(self) -> tuple:
        # Pickled for every task, so only what the worker needs, positionally. Rebuilt by a
        # plain function rather than the class: HighThroughputExecutor sends functions (and
        # the target) to each worker once, so a task carries small keys, not their names.
        return (_rebuild, (self.func, self.target, self.task_id, self.try_id))

    def __repr__(self) -> str:
        return f"<monitored {self.func!r} task {self.task_id} try {self.try_id}>"


def _rebuild(func: Callable[..., Any], target: HubTarget, task_id: int, try_id: int) -> Any:
    return MonitoredCall(func, target, task_id, try_id)
