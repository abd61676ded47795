"""The last lines of a task's stdout/stderr file, read safely for a dashboard.

A monitoring database names files; the dashboard must not become a way to read anything the
name points at, nor hang on it. So a file's tail is shown only if, after symlinks are
resolved, it is a regular file outside /proc, /sys and /dev; it is opened without blocking
(a FIFO's open() would wait for a writer for ever), at most TAIL_BYTES are read, and the read
runs on its own daemon thread under a time limit, never on a request thread: a hung
filesystem costs one parked reader thread (at most READER_THREADS of them), never a page.
Any other path is shown with the reason its contents are not.
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

TAIL_BYTES = 16 * 1024
TAIL_LINES = 40
READ_TIMEOUT_S = 2.0
# Readers stuck on a hung filesystem stay parked; while this many are busy, a new read waits
# for one (within its deadline) instead of piling up threads.
READER_THREADS = 32
SYSTEM_ROOTS = ("/proc", "/sys", "/dev")


@dataclass(frozen=True)
class FileTail:
    path: str
    readable: bool
    lines: list[str]
    note: str


WITHHELD_NOTE = (
    "file contents are not shown: the dashboard listens on a network address; restart it "
    "with --show-files to show the last lines of task output files"
)


class NotShown(Exception):
    """The path names something whose contents the dashboard does not show; str() says why."""


_readers = threading.BoundedSemaphore(READER_THREADS)


def _kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
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


def _read_tail(path: Path) -> tuple[list[str], int]:
    resolved = os.path.realpath(path)
    fd, info = _open_regular(resolved)
    try:
        size = info.st_size
        data = os.pread(fd, TAIL_BYTES, max(0, size - TAIL_BYTES))
    finally:
        os.close(fd)
    if b"\0" in data:  # a sparse or binary file: no use as text, and huge in a page
        raise NotShown(f"it looks binary (its last {len(data):,} bytes hold NUL bytes; "
                       f"size {size:,} bytes)")
    lines = data.decode("utf-8", errors="replace").splitlines()
    if size > TAIL_BYTES and lines:
        lines = lines[1:]  # the first line is probably cut
    return lines[-TAIL_LINES:], size


class _Read:
    """One tail read on its own daemon thread; the page waits for it only until a deadline."""

    def __init__(self, path_text: str, path: Path, deadline: float) -> None:
        self.path_text = path_text
        self.result: FileTail | None = None
        self.done = threading.Event()
        self.started = _readers.acquire(timeout=max(0.0, deadline - time.monotonic()))
        if self.started:
            threading.Thread(target=self._run, args=(path,), name="taskscope-filetail",
                             daemon=True).start()

    def _run(self, path: Path) -> None:
        try:
            lines, size = _read_tail(path)
            note = f"last {len(lines)} lines of {size:,} bytes" if size else "empty file"
            self.result = FileTail(self.path_text, True, lines, note)
        except NotShown as exc:
            self.result = _not_shown(self.path_text, path, str(exc))
        except (OSError, ValueError) as exc:  # e.g. EIO from a failing disk: say so
            self.result = _not_shown(self.path_text, path, f"reading it failed ({exc})")
        finally:
            self.done.set()
            _readers.release()

    def outcome(self, timeout_s: float) -> FileTail:
        if not self.started:
            return FileTail(self.path_text, False, [], "not shown: too many output files are "
                            "being read at once, or earlier reads are stuck on a hung "
                            "filesystem; reload later")
        if self.done.wait(max(0.0, timeout_s)) and self.result is not None:
            return self.result
        return FileTail(self.path_text, False, [], f"not shown: it could not be read within "
                        f"{READ_TIMEOUT_S:g} s (a slow or hung filesystem?)")


def _not_shown(path_text: str, path: Path, reason: str) -> FileTail:
    resolved = os.path.realpath(path)
    where = f" (resolves to {resolved})" if resolved != str(path) else ""
    return FileTail(path_text, False, [], f"not shown{where}: {reason}")


def _full_path(path_text: str, base: Path | None) -> Path:
    path = Path(path_text).expanduser()
    if not path.is_absolute() and base is not None:
        path = base / path
    return Path(os.path.abspath(path))


def tails(
    paths: Sequence[str | None], base: Path | None = None, *, allowed: bool = True,
    timeout_s: float = READ_TIMEOUT_S,
) -> list[FileTail | None]:
    """The ends of the files named in `paths` (relative ones against `base`), read in
    parallel under one deadline; None for an empty name. When `allowed` is False (a dashboard
    reachable from the network), only the paths, never the contents."""
    deadline = time.monotonic() + timeout_s
    reads: list[_Read | FileTail | None] = []
    for path_text in paths:
        if not path_text:
            reads.append(None)
        elif not allowed:
            reads.append(FileTail(path_text, False, [], WITHHELD_NOTE))
        elif "\0" in path_text:
            reads.append(FileTail(path_text, False, [], "not shown: the name holds a NUL byte"))
        else:
            reads.append(_Read(path_text, _full_path(path_text, base), deadline))
    return [r.outcome(deadline - time.monotonic()) if isinstance(r, _Read) else r for r in reads]


def tail(
    path_text: str | None, base: Path | None = None, *, allowed: bool = True
) -> FileTail | None:
    """The end of one file; see `tails`."""
    return tails([path_text], base, allowed=allowed)[0]
