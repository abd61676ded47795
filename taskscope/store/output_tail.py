"""The last lines of a file a monitoring database names (a task's stdout or stderr), read so
that the name cannot be used to read anything else, nor to hang the reader.

A database is data from anywhere: its paths may name a FIFO (open() would wait for a writer
for ever), /dev/zero, /proc/self/environ (the reader's own environment), a symlink to a
private key, a directory or a 10 GB sparse file. So a tail is read only if, after symlinks are
resolved, the path is a regular file outside /proc, /sys and /dev (also checked by device
number). It is opened with O_NONBLOCK and with O_NOFOLLOW on the resolved name, at most
`max_bytes` are read, and the read runs on its own daemon thread under a deadline, never on
the caller's. A hung filesystem costs one parked thread (at most READER_THREADS of them),
never the caller. Any other path gets the reason it was not read.

Used by the dashboard's task pages (visualize/filetail.py) and by the failure analysis (the
stderr tail of a group's example).
"""

from __future__ import annotations

import errno
import os
import stat
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

READ_TIMEOUT_S = 2.0
# Readers stuck on a hung filesystem stay parked; while this many are busy, a new read waits
# for one (within its deadline) instead of piling up threads.
READER_THREADS = 32
SYSTEM_ROOTS = ("/proc", "/sys", "/dev")


@dataclass(frozen=True)
class Tail:
    """What was read: `lines` (None when the file was not read, `reason` then says why)."""

    lines: list[str] | None
    size: int = 0
    reason: str = ""


class NotShown(Exception):
    """The path names something whose contents are not read; str() says why."""


_readers = threading.BoundedSemaphore(READER_THREADS)


def _kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return name
    return "not a regular file"


def _under_system_root(path: str) -> str | None:
    for root in SYSTEM_ROOTS:
        if path == root or path.startswith(root + "/"):
            return root
    return None


def _system_devices() -> set[int]:
    """The device numbers of the /proc, /sys and /dev filesystems, to catch them when
    mounted elsewhere (a bind mount, a chroot's /proc)."""
    devices = set()
    for root in SYSTEM_ROOTS:
        try:
            devices.add(os.stat(root).st_dev)
        except OSError:
            pass
    return devices


def _open_regular(resolved: str) -> tuple[int, os.stat_result]:
    """An fd on `resolved` if it is a regular file outside the system filesystems."""
    root = _under_system_root(resolved)
    if root is not None:
        raise NotShown(f"it is under {root}, whose files are never shown")
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0)
    flags |= getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(resolved, flags)
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # the last component became a symlink after resolving
            raise NotShown("it is a symlink loop, or changed while being opened") from exc
        if exc.errno == errno.ENOENT:
            raise NotShown("it does not exist") from exc
        raise NotShown(exc.strerror or str(exc)) from exc
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise NotShown(f"it is {_kind(info.st_mode)}, not a regular file")
        if info.st_dev in _system_devices():
            raise NotShown("it is on a system filesystem (/proc, /sys or /dev)")
        return fd, info
    except BaseException:
        os.close(fd)
        raise


def _read(path: Path, max_bytes: int, max_lines: int) -> Tail:
    resolved = os.path.realpath(path)
    try:
        fd, info = _open_regular(resolved)
        try:
            size = info.st_size
            data = os.pread(fd, max_bytes, max(0, size - max_bytes))
        finally:
            os.close(fd)
        if b"\0" in data:  # a sparse or binary file: no use as text, and huge in a page
            raise NotShown(
                f"it looks binary (its last {len(data):,} bytes hold NUL bytes; "
                f"size {size:,} bytes)"
            )
    except NotShown as exc:
        where = f" (resolves to {resolved})" if resolved != str(path) else ""
        return Tail(None, 0, f"not shown{where}: {exc}")
    except (OSError, ValueError) as exc:  # e.g. EIO from a failing disk: say so
        return Tail(None, 0, f"not shown: reading it failed ({exc})")
    lines = data.decode("utf-8", errors="replace").splitlines()
    if size > max_bytes and lines:
        lines = lines[1:]  # the first line is probably cut
    return Tail(lines[-max_lines:], size)


class _Read:
    """One read on its own daemon thread; the caller waits for it only until a deadline."""

    def __init__(self, path: Path, max_bytes: int, max_lines: int, deadline: float) -> None:
        self.result: Tail | None = None
        self.done = threading.Event()
        self.started = _readers.acquire(timeout=max(0.0, deadline - time.monotonic()))
        if self.started:
            threading.Thread(
                target=self._run,
                args=(path, max_bytes, max_lines),
                name="taskscope-output-tail",
                daemon=True,
            ).start()

    def _run(self, path: Path, max_bytes: int, max_lines: int) -> None:
        try:
            self.result = _read(path, max_bytes, max_lines)
        finally:
            self.done.set()
            _readers.release()

    def outcome(self, deadline: float, timeout_s: float) -> Tail:
        if not self.started:
            return Tail(
                None,
                0,
                "not shown: too many output files are being read at once, "
                "or earlier reads are stuck on a hung filesystem; try again later",
            )
        if self.done.wait(max(0.0, deadline - time.monotonic())) and self.result is not None:
            return self.result
        return Tail(
            None,
            0,
            f"not shown: it could not be read within {timeout_s:g} s (a slow or hung filesystem?)",
        )


def full_path(path_text: str, base: Path | None) -> Path:
    """`path_text` as an absolute path (a relative one against `base`, the run directory)."""
    path = Path(path_text).expanduser()
    if not path.is_absolute() and base is not None:
        path = base / path
    return Path(os.path.abspath(path))


def read_tails(
    paths: Sequence[str],
    base: Path | None = None,
    *,
    max_bytes: int,
    max_lines: int,
    timeout_s: float = READ_TIMEOUT_S,
) -> list[Tail]:
    """The ends of the files named in `paths`, read in parallel under one deadline."""
    deadline = time.monotonic() + timeout_s
    reads: list[_Read | Tail] = []
    for path_text in paths:
        if "\0" in path_text:
            reads.append(Tail(None, 0, "not shown: the name holds a NUL byte"))
        else:
            reads.append(_Read(full_path(path_text, base), max_bytes, max_lines, deadline))
    return [r.outcome(deadline, timeout_s) if isinstance(r, _Read) else r for r in reads]
