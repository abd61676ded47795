"""``DaskExecutor``: tasks run on a Dask distributed cluster.

Three ways to get a cluster: ``address=`` connects to a running scheduler, ``cluster=`` uses
any Dask cluster object (``LocalCluster``, a dask-jobqueue cluster, ...), ``provider=`` builds
a dask-jobqueue cluster from a Parsl-style batch provider (``SlurmProvider``,
``PBSProProvider``); with none of them a ``LocalCluster`` of ``n_workers`` processes starts.

Dask is optional: this module imports it only when an executor is made, and without it the
executor refuses to be constructed with the command that installs it.

taskscope retries failed tries itself, so Dask must not: a worker that dies while running a
task fails that try at once (``allowed-failures`` 0 on every scheduler taskscope starts or
runs in this process) and the DataFlowKernel sees a :class:`~taskscope.errors.WorkerLost`.
"""

from __future__ import annotations

import concurrent.futures
import importlib.util
import itertools
import logging
import threading
import uuid
from collections.abc import Callable
from typing import Any

from taskscope.cluster.base import BatchProvider
from taskscope.cluster.dask_watch import DaskClusterWatch
from taskscope.errors import ConfigurationError, ExecutorError, SerializationError, WorkerLost
from taskscope.executors.base import ScalingExecutor

logger = logging.getLogger(__name__)

DASK_MISSING = "the Dask executor needs Dask distributed: pip install taskscope[dask]"
CONNECT_TIMEOUT = "20s"
NO_DASK_RETRIES = {"distributed.scheduler.allowed-failures": 0}


def dask_available() -> bool:
    return importlib.util.find_spec("distributed") is not None


def _call(func: Callable[..., Any], args: tuple, kwargs: dict) -> Any:
    # Runs on the worker. Arguments travel inside this call rather than as client.submit's own
    # keywords, so an app keyword named like a Dask option (priority, resources, key, ...)
    # reaches the app.
    return func(*args, **kwargs)


def _serialization_error(
    func: Callable[..., Any], args: tuple, kwargs: dict, error: Exception
) -> Exception:
    """Name the function or argument that cannot travel to a worker (Dask only says "task")."""
    import cloudpickle

    name = getattr(func, "__name__", repr(func))
    candidates = [(f"function {name!r}", func)]
    candidates += [(f"argument {i} of {name!r}", a) for i, a in enumerate(args)]
    candidates += [(f"argument {k!r} of {name!r}", v) for k, v in kwargs.items()]
    for what, value in candidates:
        try:
            cloudpickle.dumps(value)
        except Exception as e:  # noqa: BLE001 - any pickling failure names the culprit
            return SerializationError(f"{what} cannot be serialised for a Dask worker: {e}")
    return SerializationError(f"the task of {name!r} cannot be sent to Dask: {error}")


# HighThroughputExecutor arguments that change what a task gets: only their defaults work.
HTEX_REFUSED: dict[str, Any] = {
    "mem_per_worker": None,
    "cpu_affinity": "none",
    "available_accelerators": (),
    "launch_cmd": None,
    "encrypted": False,
    "working_dir": None,
}
# HighThroughputExecutor knobs for its own interchange and worker pool, meaningless on Dask.
HTEX_IGNORED = frozenset(
    {
        "prefetch_capacity",
        "worker_debug",
        "heartbeat_period",
        "heartbeat_threshold",
        "poll_period",
        "worker_ports",
        "worker_port_range",
        "interchange_port_range",
        "address_probe_timeout",
        "storage_access",
        "block_error_handler",
    }
)


def _same_default(value: Any, default: Any) -> bool:
    # [] and () are both "no accelerators"; None and "" both "no launch command".
    return value == default or (not value and not default)


class DaskExecutor(ScalingExecutor):
    """Runs each task as one Dask task on a worker of a Dask cluster.

    ``threads_per_worker`` (for the LocalCluster it starts) defaults to 1, so that a worker
    process runs one task at a time, like a HighThroughputExecutor worker, and resource
    samples are per task. ``cores_per_worker``, ``max_workers_per_node`` and
    ``worker_address`` shape the batch jobs of a ``provider``, as on the
    HighThroughputExecutor (``worker_address`` is the address the workers reach the scheduler
    on).
    """

    def __init__(
        self,
        label: str = "dask",
        address: str | None = None,
        cluster: Any = None,
        n_workers: int | None = None,
        threads_per_worker: int = 1,
        provider: BatchProvider | None = None,
        cores_per_worker: float = 1.0,
        max_workers_per_node: int | None = None,
        worker_address: str | None = None,
        adaptive: bool = True,
        watch_interval: float = 1.0,
    ) -> None:
        super().__init__(label)
        if not dask_available():
            raise ConfigurationError(f"DaskExecutor(label={label!r}): {DASK_MISSING}")
        given = [
            name
            for name, v in (("address", address), ("cluster", cluster), ("provider", provider))
            if v is not None
        ]
        if len(given) > 1:
            raise ConfigurationError(
                f"DaskExecutor(label={label!r}): give at most one of address=, cluster=, "
                f"provider= (got {', '.join(given)})"
            )
        if address is not None and (not isinstance(address, str) or not address.strip()):
            raise ConfigurationError(
                f"DaskExecutor(address=...) must be a scheduler address like "
                f"'tcp://host:8786', got {address!r}"
            )
        if cluster is not None and not hasattr(cluster, "scheduler_address"):
            raise ConfigurationError(
                "DaskExecutor(cluster=...) must be a Dask cluster object (LocalCluster, "
                f"SLURMCluster, ...), got {type(cluster).__name__}"
            )
        if provider is not None and not isinstance(provider, BatchProvider):
            raise ConfigurationError(
                "DaskExecutor(provider=...) must be a batch provider such as SlurmProvider(), "
                f"got {type(provider).__name__}"
            )
        for name, value, minimum in (
            ("n_workers", n_workers, 0),
            ("threads_per_worker", threads_per_worker, 1),
        ):
            if value is None and name == "n_workers":
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise ConfigurationError(
                    f"DaskExecutor({name}=...) must be an int >= {minimum}, got {value!r}"
                )
        self.address = address
        self.cluster = cluster
        self.n_workers = n_workers
        self.threads_per_worker = threads_per_worker
        self.provider = provider
        self.cores_per_worker = cores_per_worker
        self.max_workers_per_node = max_workers_per_node
        self.worker_address = worker_address
        self.adaptive = adaptive
        self.watch_interval = watch_interval
        self.client: Any = None
        self._owns_cluster = False
        self._watch: DaskClusterWatch | None = None
        self._pending: dict[str, tuple[Any, concurrent.futures.Future]] = {}
        self._completed: Any = None  # distributed.as_completed, made at start
        self._collector: threading.Thread | None = None
        self._wake = threading.Event()
        self._stopping = False
        self._lock = threading.Lock()
        self._ids = itertools.count()
        self._prefix = f"taskscope-{label}-{uuid.uuid4().hex[:8]}"

    # --- HighThroughputExecutor(provider=SlurmProvider(...)) --------------------------------

    @classmethod
    def for_htex(
        cls,
        label: str = "HighThroughputExecutor",
        provider: BatchProvider | None = None,
        address: str | None = None,
        cores_per_worker: float = 1.0,
        max_workers_per_node: float | None = None,
        max_workers: float | None = None,
        worker_logdir_root: str | None = None,
        **other: Any,
    ) -> DaskExecutor:
        """The executor a HighThroughputExecutor with a batch provider runs as.

        Takes the HighThroughputExecutor's own arguments. Its tuning knobs for its own
        interchange and worker pool (ports, heartbeats, prefetch, ...) mean nothing on Dask and
        are ignored; arguments that would change what a task gets are refused unless left at
        their defaults. The mapping is in docs/cluster.md.
        """
        refused = {
            name: value
            for name, value in other.items()
            if name in HTEX_REFUSED and not _same_default(value, HTEX_REFUSED[name])
        }
        unknown = sorted(n for n in other if n not in HTEX_REFUSED and n not in HTEX_IGNORED)
        if refused or unknown:
            parts = [f"{n}={v!r}" for n, v in sorted(refused.items())] + unknown
            raise ConfigurationError(
                f"HighThroughputExecutor(label={label!r}, provider={type(provider).__name__}()): "
                f"{', '.join(parts)} not supported on a batch provider (it runs on "
                "dask-jobqueue); see docs/cluster.md"
            )
        if max_workers is not None and max_workers_per_node is None:
            max_workers_per_node = max_workers
        if provider is not None and worker_logdir_root and provider.log_directory is None:
            provider.log_directory = worker_logdir_root
        return cls(
            label=label,
            provider=provider,
            cores_per_worker=cores_per_worker,
            max_workers_per_node=None
            if max_workers_per_node is None
            else int(max_workers_per_node),
            worker_address=address,
        )

    # --- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        import dask
        from distributed import Client

        from taskscope.cluster.dask_plugin import BlockIdPlugin

        with dask.config.set(NO_DASK_RETRIES):
            if self.provider is not None:
                self.cluster = self.provider.make_cluster(
                    self.label,
                    self.cores_per_worker,
                    self.max_workers_per_node,
                    self.worker_address,
                )
                self._owns_cluster = True
            elif self.cluster is None and self.address is None:
                self.cluster = self._local_cluster()
                self._owns_cluster = True
        self._no_dask_retries_in_process()
        try:
            if self.cluster is not None:
                self.client = Client(self.cluster, set_as_default=False)
            else:
                self.client = Client(self.address, set_as_default=False, timeout=CONNECT_TIMEOUT)
        except OSError as e:
            self._close_cluster()
            where = self.address or getattr(self.cluster, "scheduler_address", "?")
            raise ExecutorError(
                self.label, f"cannot reach the Dask scheduler at {where}: {e}"
            ) from e
        from distributed import as_completed

        self._completed = as_completed(loop=self.client.loop, with_results=True, raise_errors=False)
        self._stopping = False
        self._collector = threading.Thread(
            target=self._collect, name=f"taskscope-dask-results-{self.label}", daemon=True
        )
        self._collector.start()
        self.client.register_plugin(
            BlockIdPlugin(multi_process_jobs=self._jobs_have_several_workers()),
            name=BlockIdPlugin.name,
        )
        if self._owns_cluster and self.provider is None:
            # Local workers start in seconds; waiting makes the first tasks' placement and the
            # node rows independent of start-up races. Batch jobs may queue for hours: no wait.
            self.client.wait_for_workers(len(self.cluster.workers), timeout=60)
        if self.provider is not None:
            self.provider.start_blocks(self.cluster, adaptive=self.adaptive)
        elif self.cluster is not None and not self._owns_cluster and self.n_workers:
            self.cluster.scale(self.n_workers)
        if self.monitoring_send is not None and self.run_id is not None:
            self._watch = DaskClusterWatch(
                self.client,
                self.cluster,
                self.monitoring_send,
                self.run_id,
                self.label,
                interval=self.watch_interval,
            )
            self._watch.start()

    def _local_cluster(self) -> Any:
        """Worker processes on this machine (see ``taskscope.cluster.dask_local`` for why
        not ``LocalCluster``)."""
        import os

        from taskscope.cluster.dask_local import subprocess_cluster

        n_workers = self.n_workers if self.n_workers is not None else (os.cpu_count() or 1)
        log_dir = os.path.join(self.run_dir, f"dask-{self.label}")
        return subprocess_cluster(n_workers, self.threads_per_worker, log_dir)

    def _no_dask_retries_in_process(self) -> None:
        """Set allowed_failures to 0 on a user's cluster whose scheduler lives in this process.

        A scheduler elsewhere (``address=``) keeps its own setting: it may serve other users,
        and a task it reruns after a worker death shows here as one longer try.
        """
        scheduler = getattr(self.cluster, "scheduler", None)
        if scheduler is not None and hasattr(scheduler, "allowed_failures"):
            scheduler.allowed_failures = 0

    def _jobs_have_several_workers(self) -> bool:
        job_kwargs = getattr(self.cluster, "_job_kwargs", None) or {}
        return int(job_kwargs.get("processes") or 1) > 1

    def shutdown(self, wait: bool = True) -> None:
        client, self.client = self.client, None
        if client is None:
            return
        with self._lock:
            pending, self._pending = list(self._pending.values()), {}
        if pending:
            client.cancel([dask_future for dask_future, _ in pending])
            for _, result in pending:
                if not result.done():
                    result.set_exception(ExecutorError(self.label, "shut down before it ran"))
        self._stopping = True
        self._wake.set()
        if self._collector is not None:
            self._collector.join(timeout=10)
            self._collector = None
        watch, self._watch = self._watch, None
        if watch is not None:
            watch.stop_polling()
        if self._owns_cluster and self.cluster is not None:
            # Ask for no more blocks before the final rows, so they say "SCALED_IN".
            try:
                self.cluster.scale(0)
            except Exception as e:  # noqa: BLE001 - shutdown goes on; close() stops the rest
                logger.debug("scaling the cluster to 0 failed: %s", e)
        if watch is not None:
            watch.stop(end_blocks=self._owns_cluster)
        client.close()
        self._close_cluster()

    def _close_cluster(self) -> None:
        if self._owns_cluster and self.cluster is not None:
            self.cluster.close()
            self.cluster = None
            self._owns_cluster = False

    # --- tasks ----------------------------------------------------------------------------

    def submit(
        self,
        func: Callable[..., Any],
        resource_specification: dict[str, Any],
        *args: Any,
        **kwargs: Any,
    ) -> concurrent.futures.Future:
        client = self.client
        if client is None:
            raise ExecutorError(self.label, "not started (or already shut down)")
        if resource_specification:
            raise ExecutorError(
                self.label,
                "resource_specification is not supported on the Dask executor "
                f"(got {sorted(resource_specification)})",
            )
        key = f"{self._prefix}-{next(self._ids)}"
        result: concurrent.futures.Future = concurrent.futures.Future()
        result.set_running_or_notify_cancel()
        try:
            dask_future = client.submit(_call, func, args, kwargs, key=key, pure=False)
        except Exception as e:  # noqa: BLE001 - Dask serialises the task at submit time
            result.set_exception(_serialization_error(func, args, kwargs, e))
            return result
        with self._lock:
            # The client forgets a task whose future is garbage collected: keep it until done.
            self._pending[key] = (dask_future, result)
        self._completed.add(dask_future)
        self._wake.set()
        return result

    def _collect(self) -> None:
        """Settle finished tasks in batches (the collector thread).

        ``as_completed(with_results=True)`` fetches results on Dask's event loop as tasks
        finish; a done-callback per future would instead make one blocking round trip per
        result, which costs several times the throughput.
        """
        completed = self._completed
        while True:
            self._wake.clear()
            if completed.is_empty():
                if self._stopping:
                    return
                self._wake.wait()
                continue
            try:
                batch = completed.next_batch(block=True)
            except StopIteration:  # drained between the check and the wait
                continue
            for dask_future, outcome in batch:
                self._settle(dask_future, outcome)

    def _settle(self, dask_future: Any, outcome: Any) -> None:
        with self._lock:
            _, result = self._pending.pop(dask_future.key, (None, None))
        if result is None or result.done():
            return
        status = dask_future.status
        if status == "finished":
            result.set_result(outcome)
        elif status == "error" and isinstance(outcome, tuple) and len(outcome) == 3:
            _, exc, tb = outcome  # (type, exception, traceback), as Dask returns it
            result.set_exception(self._translate(exc.with_traceback(tb)))
        elif status == "cancelled":
            result.set_exception(ExecutorError(self.label, "the task was cancelled"))
        else:
            result.set_exception(
                ExecutorError(self.label, f"the Dask task ended as {status!r}: {outcome!r}")
            )

    def _translate(self, exc: BaseException) -> BaseException:
        from distributed.scheduler import KilledWorker

        if isinstance(exc, KilledWorker):
            last = exc.last_worker
            address = getattr(last, "address", None) or str(last)
            host = address.split("://", 1)[-1].rsplit(":", 1)[0]
            worker = getattr(last, "name", None)
            return WorkerLost(
                str(worker if worker is not None else address),
                host,
                "the Dask worker died while running this task (Dask KilledWorker)",
            )
        return exc

    @property
    def outstanding(self) -> int:
        from taskscope.executors.base import TaskCount

        with self._lock:
            return TaskCount(len(self._pending))

    def __repr__(self) -> str:
        where = (
            self.address
            or (type(self.provider).__name__ if self.provider else None)
            or (type(self.cluster).__name__ if self.cluster is not None else "LocalCluster")
        )
        return f"DaskExecutor(label={self.label!r}, on={where})"
