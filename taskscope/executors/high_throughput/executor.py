"""``HighThroughputExecutor``: tasks run in worker processes on this machine.

One I/O thread in the workflow process owns every pipe: it sends batches of calls to workers
with room, reads batches of results, completes futures, and replaces workers that die.
``submit()`` only serialises the call and appends it to a queue (waking the I/O thread at
most once per batch), so the per-task cost in the workflow process stays small: the machine's
cores are shared with the workers.

How many calls a worker may hold adapts to task length: enough to cover ~10 ms of work for
tiny tasks (so pipes carry big batches), one at a time for long ones. When the estimate is
wrong (tiny tasks, then long ones), a worker whose task has run past ``GIVE_BACK_AFTER``
gives back the calls it has not started; they go to whichever worker is free, and the
executor sends that worker nothing more until its long task ends. So a queued call never
waits behind a long task while another worker idles (``docs/architecture.md``, decision
"HTEX dispatch").
"""

from __future__ import annotations

import errno
import fcntl
import logging
import math
import mmap
import os
import pickle
import platform
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import psutil

import taskscope
from taskscope.errors import ExecutorError, SerializationError, WorkerLost
from taskscope.executors.base import Executor, TaskCount
from taskscope.executors.errors import BadStateException
from taskscope.executors.high_throughput import launch, placement
from taskscope.executors.high_throughput.framing import IDLE, SLOT, FrameReader, frame
from taskscope.executors.high_throughput.manager_selector import (
    ManagerSelector,
    RandomManagerSelector,
)
from taskscope.executors.high_throughput.serialize import (
    PROTOCOL,
    FunctionRegistry,
    load_exception,
    pack_call,
)
from taskscope.executors.high_throughput.task_queue import TaskQueue
from taskscope.providers import LocalProvider

logger = logging.getLogger(__name__)

QUEUED_SECONDS_PER_WORKER = 0.01
MAX_OUTSTANDING = 1024
STARTUP_FAILURE_LIMIT = 3
PIPE_SIZE = 1 << 20
# At shutdown a worker still in a task is killed after BUSY_EXIT_S; an idle one exits by
# itself once monitoring has confirmed its last frames (monitoring/sender.py: it gives up
# after 10 s without an answer), so it gets longer before it is killed.
BUSY_EXIT_S = 1.0
IDLE_EXIT_S = 30.0


@dataclass(slots=True, eq=False)
class _Task:
    tid: int
    payload: bytes
    keys: tuple[int, ...]
    future: Future
    refs: tuple  # keeps the function and arguments (and so their registry keys) alive
    priority: float | None = None  # parsl_resource_specification={'priority': ...}


@dataclass(slots=True, eq=False)
class _WorkerProcess:
    """The executor's handle on one worker process."""

    slot: int
    worker_id: str
    block_id: str
    block: int
    proc: subprocess.Popen
    to_fd: int
    from_fd: int
    log_path: str
    reader: FrameReader = field(default_factory=FrameReader)
    outstanding: dict[int, _Task] = field(default_factory=dict)
    sent_keys: set[int] = field(default_factory=set)
    outbuf: bytearray = field(default_factory=bytearray)
    ready: bool = False
    hostname: str = ""
    idle_since: float = field(default_factory=time.time)
    closing: bool = False  # draining: its pipe was closed, it exits when its tasks are done
    # The task this worker said runs long (it gave back its queue): send it nothing more
    # until that task's result arrives.
    long_task: int | None = None


def _load(w: _WorkerProcess) -> int:
    return len(w.outstanding)


def _describe_exit(returncode: int | None) -> str:
    if returncode is None:
        return "it stopped responding"
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        hint = " (for example by the OOM killer)" if name == "SIGKILL" else ""
        return f"the worker process was killed by {name}{hint}"
    return f"the worker process exited with status {returncode}"


def _tail(path: str, lines: int = 15) -> str:
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-lines:]).strip()
    except OSError:
        return ""


def _set_nonblocking(fd: int) -> None:
    fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) | os.O_NONBLOCK)


def _grow_pipe(fd: int) -> None:
    if hasattr(fcntl, "F_SETPIPE_SZ"):
        try:
            fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, PIPE_SIZE)
        except OSError:
            pass  # above /proc/sys/fs/pipe-max-size: the default size still works


def kill_process_tree(pid: int) -> None:
    """SIGKILL a process and everything it started (bash apps included)."""
    try:
        root = psutil.Process(pid)
        victims = root.children(recursive=True) + [root]
    except psutil.Error:
        return
    for p in victims:
        try:
            p.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(victims, timeout=2)


class HighThroughputExecutor(Executor):
    """Runs tasks in worker processes on this machine, started once and reused.

    Workers per block: ``max_workers_per_node`` (alias ``max_workers``), or as many as fit
    ``cores_per_worker`` on this machine's cores. ``provider=LocalProvider(...)`` says how
    many blocks (``init_blocks``/``min_blocks``/``max_blocks``) and what ``worker_init``
    shell snippet runs before each worker. ``address`` is accepted for Parsl configs; local
    workers talk to the executor over pipes, not the network.
    """

    # Set in _reset_state(); declared here because set_bad_state() assigns them too.
    _broken: str | None
    _executor_exception: BaseException | None

    def __init__(
        self,
        label: str = "HighThroughputExecutor",
        provider: LocalProvider | None = None,
        address: str | None = None,
        cores_per_worker: float = 1.0,
        mem_per_worker: float | None = None,
        max_workers_per_node: float | None = None,
        max_workers: float | None = None,
        prefetch_capacity: int = 0,
        worker_debug: bool = False,
        working_dir: str | None = None,
        worker_logdir_root: str | None = None,
        cpu_affinity: str = "none",
        available_accelerators: Any = (),
        heartbeat_period: float = 30,
        heartbeat_threshold: float = 120,
        poll_period: float = 10,
        launch_cmd: str | None = None,
        worker_ports: tuple[int, int] | None = None,
        worker_port_range: tuple[int, int] | None = None,
        interchange_port_range: tuple[int, int] | None = None,
        address_probe_timeout: int | None = None,
        storage_access: Any = None,
        encrypted: bool = False,
        block_error_handler: Any = True,
        loopback_address: str = "127.0.0.1",
        drain_period: float | None = None,
        manager_selector: ManagerSelector | None = None,
        worker_port: int | None = None,
        interchange_launch_cmd: Any = None,
        remote_monitoring_radio: Any = None,
    ):
        super().__init__(label)
        if provider is None:
            provider = LocalProvider()
        if not isinstance(provider, LocalProvider):
            raise TypeError(
                "HighThroughputExecutor(provider=...) must be a LocalProvider; "
                f"got {type(provider).__name__} (other schedulers are not "
                "supported by this executor)"
            )
        if (
            isinstance(cores_per_worker, bool)
            or not isinstance(cores_per_worker, (int, float))
            or cores_per_worker <= 0
        ):
            raise ValueError(
                "HighThroughputExecutor(cores_per_worker=...) must be a positive "
                f"number, got {cores_per_worker!r}"
            )
        if (
            max_workers is not None
            and max_workers_per_node is not None
            and max_workers != max_workers_per_node
        ):
            raise ValueError(
                "HighThroughputExecutor: give max_workers_per_node or its alias "
                "max_workers, not two different values"
            )
        limit = max_workers_per_node if max_workers_per_node is not None else max_workers
        if limit is not None and (
            isinstance(limit, bool) or not isinstance(limit, (int, float)) or limit < 1
        ):
            raise ValueError(
                "HighThroughputExecutor(max_workers_per_node=...) must be a "
                f"number >= 1, got {limit!r}"
            )
        if (
            isinstance(prefetch_capacity, bool)
            or not isinstance(prefetch_capacity, int)
            or prefetch_capacity < 0
        ):
            raise ValueError(
                "HighThroughputExecutor(prefetch_capacity=...) must be an int "
                f">= 0, got {prefetch_capacity!r}"
            )
        if address is not None and not isinstance(address, str):
            raise TypeError(
                f"HighThroughputExecutor(address=...) must be a str, got {type(address).__name__}"
            )
        launch.check_loopback_address(loopback_address)
        launch.check_drain_period(drain_period)
        placement.check_affinity(cpu_affinity)
        if manager_selector is not None and not isinstance(manager_selector, ManagerSelector):
            raise TypeError(
                "HighThroughputExecutor(manager_selector=...) must be a ManagerSelector "
                f"(for example BlockIdManagerSelector()), got {type(manager_selector).__name__}"
            )
        self.provider = provider
        self.address = address
        # There is no interchange: the executor talks to its workers over pipes. Kept for
        # Parsl configs and code that reads them (docs/compatibility.md).
        self.loopback_address = loopback_address
        self.interchange_launch_cmd = interchange_launch_cmd or ["interchange.py"]
        self.worker_port = worker_port
        self.remote_monitoring_radio = remote_monitoring_radio
        self.drain_period = drain_period
        self.manager_selector = manager_selector or RandomManagerSelector()
        self.cores_per_worker = cores_per_worker
        self.mem_per_worker = mem_per_worker
        self.max_workers_per_node = limit
        self.prefetch_capacity = prefetch_capacity
        self.worker_debug = worker_debug
        self.working_dir = working_dir
        self.worker_logdir_root = worker_logdir_root
        self.cpu_affinity = cpu_affinity
        self.available_accelerators = placement.accelerator_names(available_accelerators)
        self.heartbeat_period = heartbeat_period
        self.heartbeat_threshold = heartbeat_threshold
        self.poll_period = poll_period
        # Parsl's worker-pool command line; ``process_worker_pool.py`` in it stands for
        # taskscope's worker (executors/high_throughput/launch.py).
        self.launch_cmd = launch_cmd or launch.DEFAULT_LAUNCH_CMD
        self.storage_access = storage_access
        self.encrypted = encrypted
        self._started = False
        self._reset_state()

    # ------------------------------------------------------------------ sizing
    @property
    def workers_per_block(self) -> int:
        """Workers started per block: as Parsl's worker pool counts them on its node (the
        cores, or ``PARSL_CORES``, over ``cores_per_worker``; the available memory, or
        ``PARSL_MEMORY_GB``, over ``mem_per_worker``; ``max_workers_per_node``; one per
        accelerator), at least one."""
        cores = int(os.environ.get("PARSL_CORES") or os.cpu_count() or 1)
        slots = [math.floor(cores / self.cores_per_worker)]
        if self.mem_per_worker:
            memory_gb = os.environ.get("PARSL_MEMORY_GB")
            available = float(memory_gb) if memory_gb else psutil.virtual_memory().available / 2**30
            slots.append(math.floor(available / self.mem_per_worker))
        if self.max_workers_per_node not in (None, float("inf")):
            slots.append(math.floor(self.max_workers_per_node))
        if self.available_accelerators:
            slots.append(len(self.available_accelerators))
        return max(1, min(slots))

    @property
    def workers_per_node(self) -> int | float:
        """Parsl's figure from the configuration alone: ``max_workers_per_node`` limited by
        the provider's ``cores_per_node``/``mem_per_node`` (when it has them) and the
        accelerators. Without any of those Parsl guesses 1; taskscope knows its machine and
        says how many workers a block starts (``workers_per_block``)."""
        limit = self.max_workers_per_node
        slots: list[float] = [float("inf") if limit is None else limit]
        cores_per_node = getattr(self.provider, "cores_per_node", None)
        if cores_per_node is not None:
            slots.append(math.floor(cores_per_node / self.cores_per_worker))
        mem_per_node = getattr(self.provider, "mem_per_node", None)
        if mem_per_node is not None and self.mem_per_worker:
            slots.append(math.floor(mem_per_node / self.mem_per_worker))
        if self.available_accelerators:
            slots.append(len(self.available_accelerators))
        found = min(slots)
        return self.workers_per_block if found == float("inf") else found

    @property
    def worker_count(self) -> int:
        return (
            self.workers_per_block * self.provider.nodes_per_block * self.provider.blocks_to_start()
        )

    @property
    def connected_workers(self) -> int:
        """Workers that have started and said hello (Parsl's name)."""
        return sum(1 for w in self._workers if w is not None and w.ready)

    @property
    def outstanding(self) -> int:
        return TaskCount(len(self._queue) + sum(len(w.outstanding) for w in self._workers if w))

    # ------------------------------------------------------------------ Parsl's views
    @property
    def logdir(self) -> str:
        """``<run_dir>/<label>``, as in Parsl."""
        return os.path.join(self.run_dir, self.label)

    @property
    def worker_logdir(self) -> str:
        """Where the worker logs go: ``<worker_logdir_root>/<label>``, else ``logdir``."""
        if self.worker_logdir_root is not None:
            return os.path.join(self.worker_logdir_root, self.label)
        return self.logdir

    def manager_id(self, block: int | str) -> str:
        """The id of a block's worker pool (``PARSL_WORKER_POOL_ID``; the node row's uid)."""
        return f"{self.label}-block-{block}"

    def connected_managers(self) -> list[dict[str, Any]]:
        """One dict per block with connected workers, with the keys of Parsl's
        ``connected_managers()``: ``manager``, ``block_id``, ``worker_count``, ``tasks``,
        ``idle_duration``, ``active``, ``draining``, ``parsl_version`` (taskscope's),
        ``python_version``, ``hostname``."""
        return list(self._manager_records().values())

    def connected_managers_packages(self) -> dict[str, dict[str, str]]:
        """Installed distributions each pool's workers import from, by manager id. Workers run
        this interpreter with this process's ``sys.path``, so every pool has the same."""
        from importlib.metadata import distributions

        packages = {d.metadata["Name"]: d.version for d in distributions() if d.metadata["Name"]}
        return {manager: dict(packages) for manager in self._manager_records()}

    def connected_blocks(self) -> list[str]:
        """Ids of the blocks that have connected workers."""
        return [record["block_id"] for record in self._manager_records().values()]

    def _manager_records(self) -> dict[str, dict[str, Any]]:
        now = time.time()
        records: dict[str, dict[str, Any]] = {}
        for w in list(self._workers):
            if w is None or not w.ready:
                continue
            manager = self.manager_id(w.block_id)
            record = records.get(manager)
            if record is None:
                record = records[manager] = {
                    "manager": manager,
                    "block_id": w.block_id,
                    "worker_count": 0,
                    "tasks": 0,
                    "idle_duration": 0.0,
                    "active": True,
                    "draining": int(w.block_id) in self._draining_blocks,
                    "parsl_version": taskscope.__version__,
                    "python_version": platform.python_version(),
                    "hostname": w.hostname,
                }
            record["worker_count"] += 1
            record["tasks"] += len(w.outstanding)
            # Idle since the last of its workers went idle; 0 while any has a task.
            record["idle_duration"] = max(record["idle_duration"], w.idle_since)
        for record in records.values():
            since = record["idle_duration"]
            record["idle_duration"] = 0.0 if record["tasks"] else max(0.0, now - since)
        return records

    # ------------------------------------------------------------------ bad state
    @property
    def bad_state_is_set(self) -> bool:
        """True once the executor cannot run tasks (Parsl's name)."""
        return self._executor_bad_state.is_set()

    @property
    def executor_exception(self) -> BaseException | None:
        """Why the executor is in a bad state (what its futures and submits raise)."""
        return self._executor_exception

    def set_bad_state_and_fail_all(self, exception: BaseException) -> None:
        """Parsl's: record ``exception`` as the bad state, fail every task not finished."""
        if not isinstance(exception, ExecutorError):
            exception = BadStateException(self, exception)
        self._executor_exception = exception
        self._broken = exception.reason
        self._executor_bad_state.set()
        self._fail_queue(exception)
        for w in list(self._workers):
            if w is None:
                continue
            for t in list(w.outstanding.values()):
                if not t.future.done():
                    t.future.set_exception(exception)

    # ------------------------------------------------------------------ lifecycle
    def _reset_state(self) -> None:
        self._registry = FunctionRegistry()
        self._queue = TaskQueue()
        self._workers: list[_WorkerProcess | None] = []
        self._ids = iter(range(1, sys.maxsize))
        self._wake_pending = False
        self._stopping = False
        self._broken = None
        # Parsl's attributes: set when the workers cannot start (tests read them).
        self._executor_bad_state = threading.Event()
        self._executor_exception = None
        self._startup_failures = 0
        self._block_started: dict[int, float] = {}
        self._draining_blocks: set[int] = set()
        self._drained_slots: set[int] = set()
        self._nodes_announced: dict[str, str] = {}
        self._generation = 0
        self._log_duration: float | None = None  # log of the typical task's seconds
        self.tasks_given_back = 0  # calls workers returned because a long task held them
        self._capacity = 1 + self.prefetch_capacity
        self._io_thread: threading.Thread | None = None
        self._io_ident: int | None = None
        self._selector: selectors.BaseSelector | None = None

    def start(self) -> None:
        if self._started:
            raise ExecutorError(self.label, "already started")
        self._reset_state()
        # Settings may be changed between construction and start (Parsl's tests do).
        launch.check_drain_period(self.drain_period)
        pool_size = self.workers_per_block
        self._placements = [
            placement.placement_env(
                placement.cores_for_worker(self.cpu_affinity, rank, pool_size),
                self.available_accelerators[rank] if self.available_accelerators else None,
            )
            for rank in range(pool_size)
        ]
        # Workers run where the workflow runs. ``working_dir`` is, as in Parsl, where file
        # staging puts files; it need not exist.
        self._cwd = os.getcwd()
        self._log_dir = self.worker_logdir
        os.makedirs(self._log_dir, exist_ok=True)
        n = self.worker_count
        # One 8-byte slot per worker: the id of the task it is running, or IDLE.
        self._slot_fd = (
            os.memfd_create(f"taskscope-{self.label}-slots")
            if hasattr(os, "memfd_create")
            else self._slot_file()
        )
        os.ftruncate(self._slot_fd, max(mmap.PAGESIZE, n * SLOT.size))
        self._slots = mmap.mmap(self._slot_fd, 0)
        self._wake_r, self._wake_w = os.pipe()
        _set_nonblocking(self._wake_r)
        _set_nonblocking(self._wake_w)
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        self._env = self._worker_env()
        self._started = True
        # Parsl's block rows: PENDING when the block is asked for, RUNNING once started,
        # SCALED_IN when the executor lets it go (monitoring's block table).
        self._send_blocks("PENDING")
        for slot in range(n):
            self._workers.append(self._spawn(slot))
        self._io_thread = threading.Thread(
            target=self._io_loop, name=f"taskscope-{self.label}", daemon=True
        )
        self._io_thread.start()
        self._send_blocks("RUNNING")
        logger.info("%s started %d workers (%d per block)", self.label, n, self.workers_per_block)

    def _slot_file(self) -> int:
        import tempfile

        fd, path = tempfile.mkstemp(prefix="taskscope-slots-")
        os.unlink(path)
        return fd

    def _worker_env(self) -> dict[str, str]:
        env = dict(os.environ)
        package_parent = os.path.dirname(os.path.dirname(os.path.abspath(taskscope.__file__)))
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (package_parent, env.get("PYTHONPATH", "")) if p
        )
        # Workers must import whatever the workflow's functions import by reference.
        env["TASKSCOPE_SYS_PATH"] = os.pathsep.join(
            os.path.abspath(p) if p else os.getcwd() for p in sys.path
        )
        env["TASKSCOPE_EXECUTOR_LABEL"] = self.label
        env["PARSL_WORKER_COUNT"] = str(self.workers_per_block)  # the pool's size, as in Parsl
        if self.run_id:
            env["TASKSCOPE_RUN_ID"] = self.run_id
        return env

    def _block_of(self, slot: int) -> int:
        return slot // (self.workers_per_block * self.provider.nodes_per_block)

    def _spawn(self, slot: int) -> _WorkerProcess:
        self._generation += 1
        block = self._block_of(slot)
        rank = slot % self.workers_per_block
        worker_id = f"{self.label}-{slot}.{self._generation}"
        to_r, to_w = os.pipe()
        from_r, from_w = os.pipe()
        for fd in (to_w, from_w):
            _grow_pipe(fd)
        SLOT.pack_into(self._slots, slot * SLOT.size, IDLE)
        cmd = [
            sys.executable,
            "-m",
            "taskscope.executors.high_throughput.worker",
            "--in-fd",
            str(to_r),
            "--out-fd",
            str(from_w),
            "--slot-fd",
            str(self._slot_fd),
            "--slot",
            str(slot),
            "--parent-pid",
            str(os.getpid()),
        ]
        if not launch.is_default(self.launch_cmd):
            shell = launch.shell_command(
                self.launch_cmd, cmd, self._launch_values(), block_id=str(block)
            )
            cmd = ["/bin/bash", "-c", f"{self.provider.worker_init}\n{shell}"]
        elif self.provider.worker_init.strip():
            import shlex

            cmd = ["/bin/bash", "-c", f"{self.provider.worker_init}\nexec {shlex.join(cmd)}"]
        env = dict(
            self._env,
            TASKSCOPE_WORKER_ID=worker_id,
            TASKSCOPE_BLOCK_ID=str(block),
            PARSL_WORKER_RANK=str(rank),
            PARSL_WORKER_BLOCK_ID=str(block),
            PARSL_WORKER_POOL_ID=self.manager_id(block),
        )
        env.update(self._placements[rank])
        log_path = os.path.join(self._log_dir, f"worker_{slot}.log")
        with open(log_path, "ab") as log:
            log.write(f"--- {worker_id} starting {time.ctime()}\n".encode())
            log.flush()
            try:
                # Own session: Ctrl-C in the terminal goes to the workflow, which then shuts
                # the workers down itself.
                proc = subprocess.Popen(
                    cmd,
                    pass_fds=(to_r, from_w, self._slot_fd),
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=env,
                    cwd=self._cwd,
                    start_new_session=True,
                )
            finally:
                os.close(to_r)
                os.close(from_w)
        _set_nonblocking(to_w)
        _set_nonblocking(from_r)
        w = _WorkerProcess(
            slot=slot,
            worker_id=worker_id,
            block_id=str(block),
            block=block,
            proc=proc,
            to_fd=to_w,
            from_fd=from_r,
            log_path=log_path,
        )
        assert self._selector is not None
        self._selector.register(from_r, selectors.EVENT_READ, w)
        return w

    def _launch_values(self) -> dict[str, Any]:
        """Parsl's placeholders for ``launch_cmd`` (executors/high_throughput/launch.py)."""
        limit = self.max_workers_per_node
        return {
            "debug": "--debug" if self.worker_debug else "",
            "max_workers_per_node": (
                "" if limit in (None, float("inf")) else f"--max_workers_per_node={limit}"
            ),
            "addresses": self.address or self.loopback_address,
            "prefetch_capacity": self.prefetch_capacity,
            "cores_per_worker": self.cores_per_worker,
            "mem_per_worker": self.mem_per_worker,
            "poll_period": self.poll_period,
            "worker_port": self.worker_port,
            "cert_dir": None,
            "logdir": self._log_dir,
            "logconf": None,
            "heartbeat_period": self.heartbeat_period,
            "heartbeat_threshold": self.heartbeat_threshold,
            "address_probe_timeout_string": "",
            "drain_period": self.drain_period,
            "cpu_affinity": self.cpu_affinity,
            "enable_mpi_mode": "",
            "mpi_launcher": "mpiexec",
            "accelerators": " ".join(self.available_accelerators),
            "nodes_per_block": self.provider.nodes_per_block,
            "task_url": "",
            "result_url": "",
        }

    def shutdown(self) -> None:
        if not self._started:
            return
        self._stopping = True
        self._wake()
        if self._io_thread is not None and self._io_thread is not threading.current_thread():
            self._io_thread.join(timeout=10)
        workers = [w for w in self._workers if w is not None]
        for w in workers:
            self._close_fd(w.to_fd)  # EOF: an idle worker exits at once
        now = time.monotonic()
        busy_deadline, idle_deadline = now + BUSY_EXIT_S, now + IDLE_EXIT_S
        for w in workers:
            deadline = busy_deadline if w.outstanding else idle_deadline
            try:
                w.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
            # Kill whatever is left: a worker busy in a task, and any process a task started.
            kill_process_tree(w.proc.pid)
            try:
                w.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                logger.error("%s: worker pid %d did not exit", self.label, w.proc.pid)
            self._close_fd(w.from_fd)
        error = ExecutorError(self.label, "shut down before this task finished")
        for w in workers:
            for t in w.outstanding.values():
                if not t.future.done():
                    t.future.set_exception(error)
            w.outstanding.clear()
        while self._queue:
            t = self._queue.popleft()
            if not t.future.done():
                t.future.set_exception(error)
        for block_id, hostname in self._nodes_announced.items():
            self._send_node(block_id, hostname, active=False)
        self._send_blocks("SCALED_IN")
        if self._selector is not None:
            self._selector.close()
        for fd in (self._wake_r, self._wake_w):
            self._close_fd(fd)
        self._slots.close()
        self._close_fd(self._slot_fd)
        self._workers = []
        self._started = False
        logger.info("%s shut down", self.label)

    @staticmethod
    def _close_fd(fd: int) -> None:
        try:
            os.close(fd)
        except OSError:
            pass

    # ------------------------------------------------------------------ submission
    def submit(
        self,
        func: Callable[..., Any],
        resource_specification: dict[str, Any],
        *args: Any,
        **kwargs: Any,
    ) -> Future:
        if not self._started or self._stopping:
            raise ExecutorError(self.label, "not running (not started, or shut down)")
        if self._executor_exception is not None:
            raise self._executor_exception
        if self._broken is not None:
            raise ExecutorError(self.label, self._broken)
        priority = None
        if resource_specification:
            self.validate_resource_spec(resource_specification)
            priority = resource_specification.get("priority")
        payload, keys = pack_call(func, args, kwargs, self._registry)
        fut: Future = Future()
        self._queue.append(
            _Task(next(self._ids), payload, keys, fut, (func, args, kwargs), priority)
        )
        if not self._wake_pending and threading.get_ident() != self._io_ident:
            self._wake()
        return fut

    ACCEPTED_RESOURCE_KEYS = frozenset({"priority"})

    def validate_resource_spec(self, resource_specification: dict[str, Any]) -> None:
        """Parsl's check: HTEX accepts only ``priority`` (a number; lower runs first)."""
        from taskscope.executors.errors import InvalidResourceSpecification

        if not resource_specification:
            return
        invalid = set(resource_specification) - self.ACCEPTED_RESOURCE_KEYS
        if invalid:
            raise InvalidResourceSpecification(
                invalid,
                "Task resource specification only accepts these types of resources: "
                + ", ".join(sorted(self.ACCEPTED_RESOURCE_KEYS)),
            )
        priority = resource_specification.get("priority")
        if priority is not None and (
            isinstance(priority, bool) or not isinstance(priority, (int, float))
        ):
            raise InvalidResourceSpecification(
                {"priority"}, f"priority must be a number, got {priority!r}"
            )

    def _wake(self) -> None:
        self._wake_pending = True
        try:
            os.write(self._wake_w, b"!")
        except OSError:
            pass  # the wake pipe is full (already woken) or closed (shutting down)

    # ------------------------------------------------------------------ the I/O thread
    def _io_loop(self) -> None:
        self._io_ident = threading.get_ident()
        selector = self._selector
        assert selector is not None
        try:
            while not self._stopping:
                for key, _events in selector.select(timeout=self._select_timeout()):
                    w = key.data
                    if w is None:
                        # Empty the pipe first, then clear the flag. The other order loses
                        # wake-ups: a submit() between the two sees the flag still set and
                        # writes nothing, while its earlier wake byte has just been read, so
                        # the flag stays set with an empty pipe and later submits wait for
                        # the select() timeout (1 s stalls at the end of a burst).
                        try:
                            os.read(self._wake_r, 4096)
                        except BlockingIOError:
                            pass
                        self._wake_pending = False
                    elif key.fd == w.from_fd:
                        self._on_readable(w)
                    else:
                        self._on_writable(w)
                if self.drain_period is not None and not self._stopping:
                    self._drain()
                if self._queue and not self._stopping:
                    self._dispatch()
        except Exception:
            logger.exception("%s: I/O thread crashed", self.label)
            self.set_bad_state_and_fail_all(
                BadStateException(self, "its I/O thread crashed; see the run log")
            )

    # ------------------------------------------------------------------ drain_period
    def _select_timeout(self) -> float:
        if self.drain_period is None or not self._block_started:
            return 1.0
        now = time.monotonic()
        due = [
            started + self.drain_period - now
            for block, started in self._block_started.items()
            if block not in self._draining_blocks
        ]
        return max(0.01, min([1.0, *due]))

    def _drain(self) -> None:
        """Parsl's ``drain_period``: ``drain_period`` s after a block starts, its workers take
        no new task; each exits when its tasks are done, and the block ends. A block ended
        this way is started afresh when tasks are waiting (in Parsl the scaling strategy
        starts a new block)."""
        assert self.drain_period is not None
        now = time.monotonic()
        for block, started in self._block_started.items():
            if block not in self._draining_blocks and now >= started + self.drain_period:
                logger.info(
                    "%s: block %d drains (drain_period=%s)", self.label, block, self.drain_period
                )
                self._draining_blocks.add(block)
        if not self._draining_blocks:
            return
        for w in self._workers:
            if (
                w is not None
                and w.block in self._draining_blocks
                and not w.closing
                and not w.outstanding
                and not w.outbuf
            ):
                w.closing = True
                self._close_fd(w.to_fd)  # EOF: the worker exits
                w.to_fd = -1

    def _drained(self, w: _WorkerProcess) -> None:
        """A draining worker exited: its slot stays empty until its block starts again."""
        self._workers[w.slot] = None
        self._drained_slots.add(w.slot)
        self._queue.extendleft(reversed(list(w.outstanding.values())))
        w.outstanding.clear()
        if not any(x is not None and x.block == w.block for x in self._workers):
            self._draining_blocks.discard(w.block)
            self._block_started.pop(w.block, None)
            self._send_node(w.block_id, w.hostname, active=False)
            self._nodes_announced.pop(w.block_id, None)

    def _restart_drained_blocks(self) -> None:
        for slot in sorted(self._drained_slots):
            block = self._block_of(slot)
            if block in self._draining_blocks:
                continue  # the block's other workers still finish their tasks
            self._drained_slots.discard(slot)
            self._workers[slot] = self._spawn(slot)

    def _dispatch(self) -> None:
        if self._drained_slots:
            self._restart_drained_blocks()
        queue = self._queue
        capacity = self._capacity
        draining = self._draining_blocks
        ready = [
            w
            for w in self._workers
            if w is not None
            and w.ready
            and w.long_task is None
            and len(w.outstanding) < capacity
            and (not draining or w.block not in draining)
        ]
        # Least loaded first: tasks submitted one at a time are dispatched one at a time, and
        # in a fixed order they all went to the first worker with room (500 tasks of 0.1 s on
        # 2 workers ran at 10 tasks/s, one worker idle, while the capacity allowed it).
        ready.sort(key=_load)
        spread = type(self.manager_selector) is RandomManagerSelector
        if not spread:
            ready = self._by_selector(ready)
        while queue and ready:
            # Spread evenly, or (another selector) fill the preferred block's workers first.
            share = max(1, -(-len(queue) // len(ready))) if spread else capacity
            still_room = []
            for w in ready:
                n = min(capacity - len(w.outstanding), share, len(queue))
                if n <= 0:
                    continue
                self._send_tasks(w, [queue.popleft() for _ in range(n)])
                if len(w.outstanding) < capacity:
                    still_room.append(w)
                if not queue:
                    break
            ready = still_room

    def _by_selector(self, ready: list[_WorkerProcess]) -> list[_WorkerProcess]:
        """Order workers by ``manager_selector``'s order of their blocks (least loaded first
        within a block). The selector returns the preferred block last, as in Parsl."""
        records = self._manager_records()
        blocks = {self.manager_id(w.block_id) for w in ready}
        order = self.manager_selector.sort_managers(
            {m: records[m] for m in blocks if m in records}, {m for m in blocks if m in records}
        )
        rank = {manager: i for i, manager in enumerate(reversed(order))}
        return sorted(ready, key=lambda w: rank.get(self.manager_id(w.block_id), len(rank)))

    def _send_tasks(self, w: _WorkerProcess, tasks: list[_Task]) -> None:
        definitions = []
        sent = w.sent_keys
        outstanding = w.outstanding
        calls = []
        for t in tasks:
            for key in t.keys:
                if key not in sent:
                    sent.add(key)
                    definitions.append((key, self._registry.blob(key)))
            outstanding[t.tid] = t
            calls.append((t.tid, t.payload))
        self._write(w, frame(pickle.dumps((definitions, calls), protocol=PROTOCOL)))

    def _write(self, w: _WorkerProcess, data: bytes) -> None:
        if w.outbuf:
            w.outbuf += data
            return
        try:
            written = os.write(w.to_fd, data)
        except BlockingIOError:
            written = 0
        except OSError as e:
            if e.errno in (errno.EPIPE, errno.EBADF):
                return  # the worker died; its read side reports the loss
            raise
        if written < len(data):
            w.outbuf += data[written:]
            assert self._selector is not None
            self._selector.register(w.to_fd, selectors.EVENT_WRITE, w)

    def _on_writable(self, w: _WorkerProcess) -> None:
        try:
            written = os.write(w.to_fd, w.outbuf)
        except BlockingIOError:
            return
        except OSError:
            written = len(w.outbuf)  # broken pipe: the loss is handled on the read side
        del w.outbuf[:written]
        if not w.outbuf:
            assert self._selector is not None
            self._selector.unregister(w.to_fd)

    def _on_readable(self, w: _WorkerProcess) -> None:
        try:
            data = os.read(w.from_fd, 1 << 22)
        except BlockingIOError:
            return
        if not data:
            self._worker_lost(w)
            return
        for payload in w.reader.feed(data):
            message = pickle.loads(payload)
            if message[0] == "R":
                self._on_results(w, message[1])
            elif message[0] == "B":
                self._on_given_back(w, message[1], message[2])
            elif message[0] == "H":
                w.ready = True
                w.hostname = message[2]
                self._startup_failures = 0
                # drain_period counts from the block's start: its first worker's hello, as
                # Parsl counts from its worker pool's start.
                self._block_started.setdefault(w.block, time.monotonic())
                self._send_node(w.block_id, w.hostname, active=True)

    def _on_given_back(self, w: _WorkerProcess, running: int, returned: list[int]) -> None:
        """``w`` runs a long task and handed back the calls queued behind it."""
        # Results come before this message on the pipe: if ``running`` is already done, the
        # worker is free again.
        if running in w.outstanding:
            w.long_task = running
        back = [w.outstanding.pop(tid) for tid in returned if tid in w.outstanding]
        self.tasks_given_back += len(back)
        self._queue.extendleft(reversed(back))  # they were first in line: keep their turn

    def _on_results(self, w: _WorkerProcess, items: list[tuple]) -> None:
        outstanding = w.outstanding
        long_task = w.long_task
        for tid, ok, data, _duration in items:
            if tid == long_task:
                w.long_task = None
            t = outstanding.pop(tid, None)
            if t is None:
                continue
            if ok:
                try:
                    value = pickle.loads(data)
                except Exception as e:  # noqa: BLE001
                    t.future.set_exception(
                        SerializationError(
                            f"the task's result could not be loaded: {type(e).__name__}: {e}"
                        )
                    )
                    continue
                t.future.set_result(value)
            else:
                t.future.set_exception(load_exception(data))
        if not outstanding:
            w.idle_since = time.time()
        self._update_capacity(items)

    def _update_capacity(self, items: list[tuple]) -> None:
        """Size batches from the mean task of this batch without its longest one, averaged
        in log space. The plain mean let one long task among tiny ones shrink batches to
        one call for many round trips (the long task gives its queue back anyway); a median
        let tiny tasks hide longer ones among them (1 µs and 5 ms alternating: batches of
        1,024 holding 2.5 s of work)."""
        durations = [item[3] for item in items]
        total = sum(durations)
        typical = (total - max(durations)) / (len(durations) - 1) if len(durations) > 1 else total
        log_typical = math.log(max(typical, 1e-7))
        if self._log_duration is not None:
            log_typical = 0.8 * self._log_duration + 0.2 * log_typical
        self._log_duration = log_typical
        fit = int(QUEUED_SECONDS_PER_WORKER / math.exp(log_typical))
        self._capacity = self.prefetch_capacity + max(1, min(MAX_OUTSTANDING, fit))

    def _worker_lost(self, w: _WorkerProcess) -> None:
        assert self._selector is not None
        self._selector.unregister(w.from_fd)
        if w.outbuf:
            self._selector.unregister(w.to_fd)
        self._close_fd(w.from_fd)
        self._close_fd(w.to_fd)
        try:
            returncode = w.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            kill_process_tree(w.proc.pid)
            returncode = w.proc.wait()
        if self._stopping:
            return
        if w.closing:
            self._drained(w)
            return
        (running,) = SLOT.unpack_from(self._slots, w.slot * SLOT.size)
        reason = _describe_exit(returncode)
        logger.warning(
            "%s: worker %s (pid %d) lost: %s; %d tasks outstanding",
            self.label,
            w.worker_id,
            w.proc.pid,
            reason,
            len(w.outstanding),
        )
        requeue = []
        for tid, t in w.outstanding.items():
            if tid == running:
                t.future.set_exception(
                    WorkerLost(w.worker_id, w.hostname or socket.gethostname(), reason)
                )
            else:
                requeue.append(t)  # not started, or finished with its result unsent
        w.outstanding.clear()
        self._queue.extendleft(reversed(requeue))
        if not w.ready:
            self._startup_failures += 1
            if self._startup_failures >= STARTUP_FAILURE_LIMIT:
                tail = _tail(w.log_path)
                self._workers[w.slot] = None
                self.set_bad_state_and_fail_all(
                    BadStateException(
                        self,
                        f"workers fail to start ({reason}; EXIT CODE: {returncode}); last lines "
                        f"of {w.log_path}:\n{tail}",
                    )
                )
                return
        self._workers[w.slot] = self._spawn(w.slot)

    def _fail_queue(self, error: BaseException) -> None:
        while self._queue:
            t = self._queue.popleft()
            if not t.future.done():
                t.future.set_exception(error)

    # ------------------------------------------------------------------ monitoring
    def _send_blocks(self, status: str) -> None:
        send = self.monitoring_send
        if send is None or self.run_id is None:
            return
        from taskscope.monitoring.messages import BlockInfo

        for block in range(self.provider.blocks_to_start()):
            send(
                BlockInfo(
                    run_id=self.run_id,
                    executor_label=self.label,
                    block_id=str(block),
                    status=status,
                    timestamp=time.time(),
                    job_id=str(os.getpid()),
                )
            )

    def _send_node(self, block_id: str, hostname: str, active: bool) -> None:
        """One node row per block (its workers share this host), as Parsl has per manager."""
        send = self.monitoring_send
        if send is None or self.run_id is None:
            return
        if active:
            if block_id in self._nodes_announced:
                return
            self._nodes_announced[block_id] = hostname
        from taskscope.monitoring.messages import NodeInfo

        send(
            NodeInfo(
                run_id=self.run_id,
                hostname=hostname,
                uid=f"{self.label}-block-{block_id}",
                block_id=block_id,
                cpu_count=os.cpu_count() or 1,
                total_memory=psutil.virtual_memory().total,
                active=active,
                worker_count=self.workers_per_block * self.provider.nodes_per_block,
                python_v=platform.python_version(),
                timestamp=time.time(),
            )
        )
