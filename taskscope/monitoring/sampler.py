"""Per-process resource sampling, attributed to the try that is running.

One ``ProcessMonitor`` (a daemon thread) per process, started by the first wrapped try. It
wakes every ~100 ms to flush buffered messages, and every ``resource_monitoring_interval``
per running try takes a full psutil sample of the process and its child processes.

Figures are per try, not per worker: CPU times, context switches and I/O are the try's own
thread's counters minus their values when the try began (plus CPU of child processes the try
waited for), so a worker that has run a thousand tasks still reports each task's own cost.
The start and end of a try use only getrusage, one pread and one write (a few microseconds in
all: they run for every task); /proc scans are kept to the periodic samples.
"""

from __future__ import annotations

import logging
import os
import resource
import threading
import time
from typing import Protocol

import psutil

from taskscope.monitoring import procfs
from taskscope.monitoring.buffer import MessageBuffer
from taskscope.monitoring.messages import Message, ResourceSample

logger = logging.getLogger(__name__)

SAMPLE_CHECK_PERIOD = 0.1
BLOCK_BYTES = procfs.BLOCK_BYTES


class Sink(Protocol):
    """Where a process's monitoring messages go: the hub itself (same process) or a sender."""

    buffer: MessageBuffer

    def send(self, message: Message) -> None: ...
    def try_ended(self) -> None: ...


class TryProbe:
    """Baselines of one running try, taken in the thread that runs it.

    The two getrusage results are kept whole: unpacking them into fields at every try's start
    cost more than the few reads of them that a try's end and its periodic samples make."""

    __slots__ = (
        "begin_ticks",
        "children_count",
        "interval",
        "kids",
        "me",
        "next_sample",
        "peak_rss",
        "run_id",
        "sink",
        "task_id",
        "tid",
        "try_id",
    )

    def __init__(self, run_id: str, task_id: int, try_id: int, interval: float, sink: Sink):
        self.run_id = run_id
        self.task_id = task_id
        self.try_id = try_id
        self.interval = interval
        self.sink = sink
        self.tid = threading.get_native_id()
        self.peak_rss = 0
        self.children_count = 0
        self.me = resource.getrusage(procfs.RUSAGE_THREAD)
        self.kids = resource.getrusage(resource.RUSAGE_CHILDREN)
        # Only child processes started after this are the try's (a thread executor's process
        # may have other children, e.g. another executor's worker processes).
        self.begin_ticks = procfs.boot_ticks_now() - 1
        self.next_sample = time.time() + interval if interval > 0 else float("inf")


class ProcessMonitor:
    """The sampler and flusher thread of one process."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.memory = procfs.ProcessMemory()
        self.total_memory = psutil.virtual_memory().total
        self._process = psutil.Process(self.pid)
        self._children_file = True  # /proc/<pid>/task/<tid>/children, if the kernel has it
        self._lock = threading.Lock()
        self._active: dict[int, TryProbe] = {}  # id(probe) -> probe
        self._thread = threading.Thread()
        self.ensure_running()

    def ensure_running(self) -> None:
        """Start the sampling thread, again if it has died (an exception that escaped it,
        a KeyboardInterrupt delivered to it): otherwise no try of this process would get a
        periodic sample again, without a word."""
        if not self._thread.is_alive():
            self._thread = threading.Thread(
                target=self._loop, name="taskscope-monitor", daemon=True
            )
            self._thread.start()

    # -- called by the wrapper, in the thread running the try --------------------------

    def begin_try(
        self, run_id: str, task_id: int, try_id: int, interval: float, sink: Sink
    ) -> TryProbe:
        probe = TryProbe(run_id, task_id, try_id, interval, sink)
        with self._lock:
            # Credit the peak so far to the tries already running, then restart the mark
            # so this try's peak is its own.
            self._fold_peak()
            self.memory.reset_peak()
            self._active[id(probe)] = probe
        return probe

    def end_try(self, probe: TryProbe) -> ResourceSample:
        me = resource.getrusage(procfs.RUSAGE_THREAD)
        kids = resource.getrusage(resource.RUSAGE_CHILDREN)
        me0, kids0 = probe.me, probe.kids
        with self._lock:
            self._fold_peak()
            self._active.pop(id(probe), None)
        resident_now, virtual = self.memory.current()
        peak = max(probe.peak_rss, resident_now)
        # Counters only grow; max() guards against a clock or accounting hiccup.
        return ResourceSample(
            probe.run_id,
            probe.task_id,
            probe.try_id,
            time.time(),
            probe.interval,
            self.pid,
            100.0 * peak / self.total_memory,
            probe.children_count,
            max(0.0, me.ru_utime - me0.ru_utime) + max(0.0, kids.ru_utime - kids0.ru_utime),
            max(0.0, me.ru_stime - me0.ru_stime) + max(0.0, kids.ru_stime - kids0.ru_stime),
            float(virtual),
            float(peak),
            float(
                BLOCK_BYTES
                * (
                    max(0, me.ru_inblock - me0.ru_inblock)
                    + max(0, kids.ru_inblock - kids0.ru_inblock)
                )
            ),
            float(
                BLOCK_BYTES
                * (
                    max(0, me.ru_oublock - me0.ru_oublock)
                    + max(0, kids.ru_oublock - kids0.ru_oublock)
                )
            ),
            "running",
            procfs.current_cpu(),
            float(me.ru_nvcsw - me0.ru_nvcsw),
            float(me.ru_nivcsw - me0.ru_nivcsw),
        )

    def _fold_peak(self) -> None:
        if not self._active:
            return
        peak = self.memory.peak_resident() if self.memory.resettable else self.memory.current()[0]
        for probe in self._active.values():
            probe.peak_rss = max(probe.peak_rss, peak)

    # -- the thread ----------------------------------------------------------------------

    def _loop(self) -> None:
        while True:
            time.sleep(SAMPLE_CHECK_PERIOD)
            if os.getpid() != self.pid:
                return
            if not self._active:
                continue
            try:
                self._sample_due(time.time())
            except Exception:
                logger.exception("resource sampling failed")

    def _children(self, tid: int) -> list[int]:
        """The live descendants of the try running on thread ``tid``: the processes it
        started (a bash app's command) and theirs."""
        pids = procfs.child_pids(self.pid, tid) if self._children_file else None
        if pids is None:
            self._children_file = False
            try:
                pids = [c.pid for c in self._process.children(recursive=True)]
            except psutil.Error:
                pids = []
        return pids

    def _sample_due(self, now: float) -> None:
        with self._lock:
            due = [p for p in self._active.values() if now >= p.next_sample]
            only_one = len(self._active) == 1
        if not due:
            return
        # Few reads on purpose: with a CPU-bound task thread holding the GIL, every file
        # read here waits up to a switch interval to get the GIL back.
        me = procfs.proc_stat()
        if me is None:
            return
        status, cpu_num = me.status, me.cpu_num
        rss, vms = self.memory.current()
        child_user = child_system = 0.0
        child_read = child_write = 0
        children: list[int] = []
        counted: set[int] = set()
        begin_ticks = due[0].begin_ticks
        if only_one:
            # Live child processes (a bash app's command) can only be attributed when one
            # try runs in this process; with several concurrent tries (threads) they are not.
            children = self._children(due[0].tid)
            for pid in children:
                child = procfs.proc_stat(pid)
                if child is None or child.start_ticks < begin_ticks:
                    continue
                counted.add(pid)
                rss += child.rss
                vms += child.vms
                child_user += child.user
                child_system += child.system
                cread, cwrite = procfs.process_io(pid)
                child_read += cread
                child_write += cwrite
        kids = resource.getrusage(resource.RUSAGE_CHILDREN)
        children = [pid for pid in children if pid in counted]
        for probe in due:
            times = procfs.thread_times_of(probe.tid)
            if times is None:
                continue
            user, system, vol, invol = times
            me0, kids0 = probe.me, probe.kids
            read, write = procfs.thread_io_of(probe.tid)
            probe.peak_rss = max(probe.peak_rss, rss)
            probe.children_count = len(children)
            sample = ResourceSample(
                run_id=probe.run_id,
                task_id=probe.task_id,
                try_id=probe.try_id,
                timestamp=now,
                interval=probe.interval,
                pid=self.pid,
                memory_percent=100.0 * rss / self.total_memory,
                children_count=len(children),
                time_user=max(0.0, user - me0.ru_utime)
                + max(0.0, kids.ru_utime - kids0.ru_utime)
                + child_user,
                time_system=max(0.0, system - me0.ru_stime)
                + max(0.0, kids.ru_stime - kids0.ru_stime)
                + child_system,
                memory_virtual=float(vms),
                memory_resident=float(rss),
                disk_read=float(
                    max(0, read - me0.ru_inblock * BLOCK_BYTES)
                    + max(0, kids.ru_inblock - kids0.ru_inblock) * BLOCK_BYTES
                    + child_read
                ),
                disk_write=float(
                    max(0, write - me0.ru_oublock * BLOCK_BYTES)
                    + max(0, kids.ru_oublock - kids0.ru_oublock) * BLOCK_BYTES
                    + child_write
                ),
                status=status,
                cpu_num=cpu_num,
                ctx_switches_voluntary=float(max(0, vol - me0.ru_nvcsw)),
                ctx_switches_involuntary=float(max(0, invol - me0.ru_nivcsw)),
            )
            with self._lock:
                if id(probe) not in self._active:  # the try ended meanwhile: its final
                    continue  # sample supersedes this one
                probe.next_sample = now + probe.interval
            probe.sink.send(sample)


_monitor: ProcessMonitor | None = None
_monitor_lock = threading.Lock()


def process_monitor() -> ProcessMonitor:
    """This process's monitor, started on first use (and again in a forked child)."""
    global _monitor
    monitor = _monitor
    if monitor is not None and monitor.pid == os.getpid() and monitor._thread.is_alive():
        return monitor
    with _monitor_lock:
        if _monitor is None or _monitor.pid != os.getpid():
            _monitor = ProcessMonitor()
        _monitor.ensure_running()
        return _monitor
