"""A worker process: reads batches of calls from a pipe, runs them, writes batches of results.

Started by HighThroughputExecutor as ``python -m taskscope.executors.high_throughput.worker``.
Before each task it writes the task id into its slot of a shared memory page, so that if
the process dies (os._exit, a signal, the OOM killer) the executor knows which task was
running and fails only that one.

The executor sends a worker a few milliseconds' worth of tiny tasks at a time (one pipe write
for many calls). When a task turns out long, the worker gives the calls it has not started
back to the executor (a ``"B"`` message), which hands them to whichever worker is free: no
call waits behind a long task while another worker idles.
"""

from __future__ import annotations

import argparse
import mmap
import os
import pickle
import select
import signal
import socket
import sys
import threading
import time
from collections import deque
from typing import Any

from taskscope.errors import WorkerLost
from taskscope.executors.high_throughput.framing import IDLE, SLOT, FrameReader, frame, write_all
from taskscope.executors.high_throughput.serialize import (
    PROTOCOL,
    dump_exception,
    dump_result,
    load_call,
    load_function,
)

FLUSH_COUNT = 256  # results per frame at most
FLUSH_DELAY = 0.005  # a finished result waits at most this long while others run
# A task running longer than this gives back the calls queued behind it. Short enough that a
# free worker hardly waits, long enough that tasks of a few ms (sent in batches) never pay it.
GIVE_BACK_AFTER = 0.01
GIVE_BACK_CHECK = 0.004  # how often the watcher looks while a task runs
# Calls held longer than this while the worker works through others go back too: the
# executor sends ~10 ms of work, so only a wrong estimate (tasks longer than they were)
# gets here, and then a free worker should have them.
HOLD_LIMIT = 0.02


class Outbox:
    """Batches results; flushed when the worker goes idle, when full, or after FLUSH_DELAY."""

    def __init__(self, fd: int):
        self.fd = fd
        self.lock = threading.Lock()
        self.items: list[tuple] = []
        self.pending = threading.Event()
        threading.Thread(target=self._flusher, name="flusher", daemon=True).start()

    def send(self, message: tuple) -> None:
        """Send ``message`` after every result added before it (the executor relies on
        the order)."""
        with self.lock:
            items, self.items = self.items, []
            data = frame(pickle.dumps(message, protocol=PROTOCOL))
            if items:
                data = frame(pickle.dumps(("R", items), protocol=PROTOCOL)) + data
            write_all(self.fd, data)

    def add(self, item: tuple) -> None:
        with self.lock:
            self.items.append(item)
            n = len(self.items)
        if n == 1:
            self.pending.set()
        elif n >= FLUSH_COUNT:
            self.flush()

    def flush(self) -> None:
        with self.lock:
            items, self.items = self.items, []
            if items:
                write_all(self.fd, frame(pickle.dumps(("R", items), protocol=PROTOCOL)))

    def _flusher(self) -> None:
        while True:
            self.pending.wait()
            time.sleep(FLUSH_DELAY)
            self.pending.clear()
            self.flush()


class _MainThreadProbe:
    """Tells a long task from a descheduled one (Linux): on a loaded machine a tiny task can
    wait 10 ms for a CPU, and giving back its batch then only moves work between workers
    that are just as starved. A task counts as long once its thread has used half the
    threshold in CPU time, or is not runnable (asleep, in I/O, waiting for a child)."""

    def __init__(self) -> None:
        self.clock: int | None = None
        self.stat_path: str | None = None
        try:
            self.clock = time.pthread_getcpuclockid(threading.main_thread().ident or 0)
            path = f"/proc/self/task/{threading.get_native_id()}/stat"
            with open(path) as f:
                f.read()
            self.stat_path = path
        except (AttributeError, OSError):
            self.clock = None  # elsewhere: wall time alone decides

    def cpu(self) -> float:
        return time.clock_gettime(self.clock) if self.clock is not None else 0.0

    def waiting_for_cpu(self, cpu_since_seen: float) -> bool:
        """Runnable, and has hardly run: descheduled rather than long."""
        if self.stat_path is None or cpu_since_seen >= GIVE_BACK_AFTER / 2:
            return False
        try:
            with open(self.stat_path) as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            return False
        return state == "R"


def _watch_parent(parent_pid: int) -> None:
    # If the workflow process dies without closing our pipe (SIGKILL), do not linger. A
    # launch_cmd wrapper may sit between us and the workflow: then watch the workflow's pid.
    direct = os.getppid() == parent_pid
    while True:
        time.sleep(1.0)
        if direct:
            if os.getppid() != parent_pid:
                os._exit(3)
            continue
        try:
            os.kill(parent_pid, 0)
        except ProcessLookupError:
            os._exit(3)
        except PermissionError:
            pass  # alive, owned by someone else (a wrapper changed user)


def _pin_to_cores() -> None:
    """cpu_affinity: the executor computed this worker's cores (placement.py)."""
    cores = os.environ.get("TASKSCOPE_WORKER_CORES")
    if cores and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, [int(c) for c in cores.split(",")])


class Worker:
    def __init__(self, in_fd: int, out_fd: int, slot_fd: int, slot: int):
        self.in_fd = in_fd
        os.set_blocking(in_fd, False)  # the watcher drains it while the main thread runs a task
        self.outbox = Outbox(out_fd)
        self.slot_map = mmap.mmap(slot_fd, 0)
        self.slot_offset = slot * SLOT.size
        self.functions: dict[int, Any] = {}
        self.local: deque[tuple[int, bytes]] = deque()
        self.reader = FrameReader()
        # ``local`` is shared with the watcher without a lock: each popleft (main thread) and
        # pop (watcher) is atomic, so every call is either run or given back, never both.
        # ``read_lock`` keeps the two from reading the pipe at once. ``running`` is
        # (task id, start time) of the task being run, or None.
        self.read_lock = threading.Lock()
        self.running: tuple[int, float] | None = None
        self.busy = threading.Event()
        self.closed = False
        self.probe = _MainThreadProbe()  # made here, in the main thread it probes
        # When the calls now in ``local`` started waiting there, and the main thread's CPU
        # time then.
        self.held_since = 0.0
        self.held_cpu = 0.0
        threading.Thread(target=self._watch, name="give-back", daemon=True).start()

    def _accept(self, payload: bytes) -> None:
        definitions, tasks = pickle.loads(payload)
        for key, blob in definitions:
            self.functions[key] = load_function(blob)
        if not self.local:
            self.held_since, self.held_cpu = time.perf_counter(), self.probe.cpu()
        self.local.extend(tasks)

    def _read_available(self) -> None:
        """Move every call waiting in the pipe into ``local``."""
        with self.read_lock:
            while True:
                try:
                    data = os.read(self.in_fd, 1 << 22)
                except BlockingIOError:
                    return
                if not data:
                    self.closed = True  # the executor closed the pipe: stop when idle
                    return
                for payload in self.reader.feed(data):
                    self._accept(payload)

    def _watch(self) -> None:
        local = self.local
        busy = self.busy
        probe = self.probe
        seen_tid, seen_cpu = None, 0.0
        while True:
            busy.wait()
            time.sleep(GIVE_BACK_CHECK)
            running = self.running
            if running is None:
                busy.clear()
                # The main thread sets ``running`` before it looks at ``busy``: look again
                # after clearing, or a task started just now would go unwatched.
                if self.running is not None:
                    busy.set()
                continue
            tid, since = running
            cpu = probe.cpu()
            if tid != seen_tid:
                seen_tid, seen_cpu = tid, cpu
            now = time.perf_counter()
            long_task = now - since >= GIVE_BACK_AFTER and not probe.waiting_for_cpu(cpu - seen_cpu)
            # Held too long while this worker really worked (not while it waited for a CPU).
            held_too_long = (
                bool(local)
                and now - self.held_since >= HOLD_LIMIT
                and not probe.waiting_for_cpu(cpu - self.held_cpu)
            )
            if not (long_task or held_too_long):
                continue
            if long_task:
                self._read_available()
            returned = []
            while True:
                try:
                    returned.append(local.pop()[0])
                except IndexError:
                    break
            if returned:
                returned.reverse()
                self.outbox.send(("B", tid, returned))

    def _run_one(self, tid: int, payload: bytes) -> None:
        SLOT.pack_into(self.slot_map, self.slot_offset, tid)
        start = time.perf_counter()
        self.running = (tid, start)
        item: tuple[int, bool, Any, float]  # (task, ok, packed result or exception, seconds)
        if not self.busy.is_set():
            self.busy.set()
        try:
            func, args, kwargs = load_call(payload, self.functions)
            value = func(*args, **kwargs)
            item = (tid, True, dump_result(value), time.perf_counter() - start)
        except SystemExit as e:
            # Parsl's worker dies of it and the task gets WorkerLost; here the worker carries
            # on, and the task gets the same error type.
            lost = WorkerLost(
                os.environ.get("TASKSCOPE_WORKER_ID", str(os.getpid())),
                socket.gethostname(),
                f"the task raised SystemExit({e.code!r}); the worker carried on",
            )
            item = (tid, False, dump_exception(lost), time.perf_counter() - start)
        except BaseException as e:  # noqa: BLE001
            item = (tid, False, dump_exception(e), time.perf_counter() - start)
        self.running = None
        SLOT.pack_into(self.slot_map, self.slot_offset, IDLE)
        self.outbox.add(item)

    def run(self) -> None:
        self.outbox.send(("H", os.getpid(), socket.gethostname()))
        local = self.local
        while True:
            try:
                tid, payload = local.popleft()
            except IndexError:
                self.outbox.flush()  # out of work: send every result before waiting for more
                self._read_available()
                if not local:
                    if self.closed:
                        return
                    select.select([self.in_fd], [], [])
                continue
            self._run_one(tid, payload)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="taskscope worker (started by the executor)")
    for name in ("--in-fd", "--out-fd", "--slot-fd", "--slot", "--parent-pid"):
        parser.add_argument(name, type=int, required=True)
    # A Parsl launch_cmd passes process_worker_pool.py's options too: they mean nothing here.
    opts, _pool_options = parser.parse_known_args(argv)
    extra = os.environ.get("TASKSCOPE_SYS_PATH")
    if extra:
        sys.path.extend(p for p in extra.split(os.pathsep) if p and p not in sys.path)
    # Ctrl-C in the terminal reaches the whole foreground group; the workflow process
    # decides what happens to tasks, so workers ignore it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _pin_to_cores()
    threading.Thread(
        target=_watch_parent, args=(opts.parent_pid,), name="watchdog", daemon=True
    ).start()
    try:
        Worker(opts.in_fd, opts.out_fd, opts.slot_fd, opts.slot).run()
    except BrokenPipeError:
        pass  # the executor went away
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # noqa: BLE001
            pass
    # os._exit skips atexit: send the monitoring messages of the last tries first.
    monitoring_sender = sys.modules.get("taskscope.monitoring.sender")
    if monitoring_sender is not None:
        monitoring_sender.close_all()
    os._exit(0)  # skip interpreter teardown: daemon threads may hold the outbox lock


if __name__ == "__main__":
    main()
