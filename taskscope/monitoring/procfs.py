"""Cheap per-thread and per-process readings for the start and end of every try.

Each try reads these twice, so they avoid psutil (whose process scans cost far more): one
getrusage call per figure, and pread on file descriptors kept open per thread/process.
Everything degrades to zeros off Linux rather than failing a task.
"""

from __future__ import annotations

import ctypes
import os
import resource
import threading
import time

PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
RUSAGE_THREAD = getattr(resource, "RUSAGE_THREAD", resource.RUSAGE_SELF)

_local = threading.local()


def _thread_fd(name: str) -> int | None:
    """A descriptor of /proc/thread-self/<name>, opened once per thread."""
    key = "fd_" + name
    fd = getattr(_local, key, None)
    if fd is None:
        try:
            fd = os.open(f"/proc/thread-self/{name}", os.O_RDONLY)
        except OSError:
            fd = -1
        setattr(_local, key, fd)
    return fd if fd >= 0 else None


BLOCK_BYTES = 512  # getrusage counts storage I/O in 512-byte blocks


def parse_io(text: bytes) -> tuple[int, int]:
    """(read_bytes, write_bytes) of a /proc/.../io file: what reached the storage layer, the
    figures Parsl records (psutil's io_counters), the same as getrusage's in/out blocks."""
    read = write = 0
    for line in text.split(b"\n"):
        if line.startswith(b"read_bytes:"):
            read = int(line[11:])
        elif line.startswith(b"write_bytes:"):
            write = int(line[12:])
    return read, write


def _load_sched_getcpu():
    try:
        return ctypes.CDLL(None).sched_getcpu
    except (OSError, AttributeError):
        return None


_sched_getcpu = _load_sched_getcpu()


def current_cpu() -> str:
    """The CPU this thread runs on (a vDSO call; reading /proc costs ten times more)."""
    if _sched_getcpu is not None:
        cpu = _sched_getcpu()
        if cpu >= 0:
            return str(cpu)
    return thread_cpu_num()


def thread_cpu_num() -> str:
    """The CPU this thread last ran on (field 39 of its stat line)."""
    fd = _thread_fd("stat")
    if fd is None:
        return ""
    text = os.pread(fd, 2048, 0)
    fields = text[text.rfind(b")") + 2 :].split()
    return fields[36].decode() if len(fields) > 36 else ""


class ProcessMemory:
    """Resident peak and virtual size of this process, with a resettable peak on Linux.

    Writing '5' to /proc/self/clear_refs resets the kernel's peak-RSS mark (VmHWM), which is
    exactly the "most memory this try held" figure, even if the try freed it before
    returning. getrusage's ru_maxrss reads that mark cheaply, but it is also at least the
    peak of the process image before exec: a worker forked from a big workflow process and
    exec'ed starts with that figure for good. Then VmHWM is read from /proc/self/status.
    """

    def __init__(self) -> None:
        self.pid = os.getpid()
        self._status_fd = _open_or_minus_one("/proc/self/status", os.O_RDONLY)
        self._statm_fd = _open_or_minus_one("/proc/self/statm", os.O_RDONLY)
        self._clear_fd = _open_or_minus_one("/proc/self/clear_refs", os.O_WRONLY)
        self.resettable = False
        self._rusage_ok = False
        if self._clear_fd >= 0:
            try:
                os.write(self._clear_fd, b"5")
                self.resettable = self._vm_hwm() > 0
            except OSError:
                pass
        if self.resettable:
            rusage_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
            self._rusage_ok = rusage_peak <= self._vm_hwm() + (4 << 20)

    def reset_peak(self) -> None:
        if self.resettable:
            os.write(self._clear_fd, b"5")

    def peak_resident(self) -> int:
        """Peak RSS in bytes since the last reset (or since the process began)."""
        if self._rusage_ok:
            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        return self._vm_hwm()

    def _vm_hwm(self) -> int:
        if self._status_fd < 0:
            return 0
        text = os.pread(self._status_fd, 4096, 0)
        at = text.find(b"VmHWM:")
        if at < 0:
            return 0
        return int(text[at + 6 : text.index(b"kB", at)]) * 1024

    def current(self) -> tuple[int, int]:
        """(resident, virtual) bytes now."""
        if self._statm_fd < 0:
            return 0, 0
        fields = os.pread(self._statm_fd, 256, 0).split()
        return int(fields[1]) * PAGE_SIZE, int(fields[0]) * PAGE_SIZE


def _open_or_minus_one(path: str, flags: int) -> int:
    try:
        return os.open(path, flags)
    except OSError:
        return -1


def thread_times_of(tid: int) -> tuple[float, float, int, int] | None:
    """(user s, system s, voluntary, involuntary switches) of thread ``tid`` of this process."""
    try:
        with open(f"/proc/self/task/{tid}/stat", "rb") as f:
            stat = f.read()
        with open(f"/proc/self/task/{tid}/status", "rb") as f:
            status = f.read()
    except OSError:
        return None
    fields = stat[stat.rfind(b")") + 2 :].split()
    user, system = int(fields[11]) / CLOCK_TICKS, int(fields[12]) / CLOCK_TICKS
    vol = invol = 0
    for line in status.split(b"\n"):
        if line.startswith(b"voluntary_ctxt_switches:"):
            vol = int(line.split()[1])
        elif line.startswith(b"nonvoluntary_ctxt_switches:"):
            invol = int(line.split()[1])
    return user, system, vol, invol


def thread_io_of(tid: int) -> tuple[int, int]:
    try:
        with open(f"/proc/self/task/{tid}/io", "rb") as f:
            return parse_io(f.read())
    except OSError:
        return 0, 0


_STATES = {
    "R": "running",
    "S": "sleeping",
    "D": "disk-sleep",
    "Z": "zombie",
    "T": "stopped",
    "t": "tracing-stop",
    "I": "idle",
    "X": "dead",
}


class ProcStat:
    """The figures of one /proc/<pid>/stat line a sample needs."""

    __slots__ = ("cpu_num", "rss", "start_ticks", "status", "system", "user", "vms")

    def __init__(self, line: bytes) -> None:
        fields = line[line.rfind(b")") + 2 :].split()
        self.status = _STATES.get(fields[0].decode(), fields[0].decode())
        self.user = int(fields[11]) / CLOCK_TICKS
        self.system = int(fields[12]) / CLOCK_TICKS
        self.start_ticks = int(fields[19])  # clock ticks after boot
        self.vms = int(fields[20])
        self.rss = int(fields[21]) * PAGE_SIZE
        self.cpu_num = fields[36].decode() if len(fields) > 36 else ""


def boot_ticks_now() -> float:
    """Now, in the clock of /proc/<pid>/stat's start time (ticks since boot)."""
    return time.clock_gettime(time.CLOCK_BOOTTIME) * CLOCK_TICKS


def proc_stat(pid: int | str = "self") -> ProcStat | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return ProcStat(f.read())
    except (OSError, IndexError, ValueError):
        return None


def child_pids(pid: int, tid: int | None = None) -> list[int] | None:
    """Descendants of ``pid`` from /proc/<pid>/task/*/children, or None if the kernel
    does not provide that file (then the caller falls back to a full process scan).

    With ``tid``, only the children that thread of ``pid`` started (and all their
    descendants). A process with hundreds of threads (a thread pool, a Dask worker) otherwise
    costs a file read per thread, and while a CPU-bound try holds the GIL each read waits
    for it: 1.7 s for 200 threads, longer than the sampling interval."""
    found: list[int] = []
    todo = [pid]
    while todo:
        current = todo.pop()
        if current == pid and tid is not None:
            tids = [str(tid)]
        else:
            try:
                tids = os.listdir(f"/proc/{current}/task")
            except OSError:
                continue
        for thread in tids:
            try:
                with open(f"/proc/{current}/task/{thread}/children", "rb") as f:
                    kids = [int(k) for k in f.read().split()]
            except FileNotFoundError:
                if current == pid and os.path.exists(f"/proc/{pid}/task/{thread}"):
                    return None  # the thread is there, its children file is not
                kids = []
            except OSError:
                kids = []
            found.extend(kids)
            todo.extend(kids)
    return found


def process_io(pid: int) -> tuple[int, int]:
    try:
        with open(f"/proc/{pid}/io", "rb") as f:
            return parse_io(f.read())
    except OSError:
        return 0, 0
