"""A small ext4 filesystem, loop-mounted for one test, that the test can freeze (FIFREEZE, as
``fsfreeze -f`` does) and thaw, or fill.

While it is frozen every write to it, and every page of a shared mapping written (SQLite's
``-shm``), blocks in the kernel, uninterruptibly, until the thaw: a real frozen disk, not a
stopped process. So that no test can leave it frozen (a failed assertion, pytest-timeout, a
SIGKILL of pytest), a guard process in a session of its own thaws it when the deadline passes
or the test process is gone.

Mounting needs root (CAP_SYS_ADMIN), ``mkfs.ext4`` and loop devices; where any is missing the
test is skipped with the reason.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

# ioctl numbers from <linux/fs.h>: _IOWR('X', 119, int) and _IOWR('X', 120, int).
FIFREEZE = 0xC0045877
FITHAW = 0xC0045878
SIZE = "96M"

_GUARD = """
import fcntl, os, sys, time
parent, deadline = int(sys.argv[2]), time.monotonic() + float(sys.argv[3])
while time.monotonic() < deadline and os.getppid() == parent:
    time.sleep(0.2)
fd = os.open(sys.argv[1], os.O_RDONLY)
try:
    fcntl.ioctl(fd, {thaw})
except OSError:
    pass  # already thawed
"""


def _run(*command: str) -> None:
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise OSError(f"{' '.join(command)}: {(done.stderr or done.stdout).strip()}")


class LoopFilesystem:
    def __init__(self, root: Path) -> None:
        self.image = root / "fs.img"
        self.path = root / "mnt"
        self.frozen = False
        self._fd: int | None = None
        self._guard: subprocess.Popen[bytes] | None = None

    def mount(self) -> None:
        missing = [tool for tool in ("mkfs.ext4", "mount", "umount") if not shutil.which(tool)]
        if missing:
            pytest.skip(f"a loop-mounted test filesystem needs {', '.join(missing)}")
        if os.geteuid() != 0:
            pytest.skip("a loop-mounted test filesystem needs root, to mount, freeze or fill it")
        self.path.mkdir()
        _run("truncate", "-s", SIZE, str(self.image))
        _run("mkfs.ext4", "-q", "-F", "-E", "nodiscard", str(self.image))
        try:
            _run("mount", "-o", "loop", str(self.image), str(self.path))
        except OSError as e:
            pytest.skip(f"cannot loop-mount a filesystem here: {e}")
        self._fd = os.open(self.path, os.O_RDONLY)

    def freeze(self, guard_s: float) -> None:
        """Freeze it; the guard thaws it after ``guard_s`` seconds whatever happens here."""
        assert self._fd is not None
        code = _GUARD.format(thaw=FITHAW)
        self._guard = subprocess.Popen(
            [sys.executable, "-c", code, str(self.path), str(os.getpid()), str(guard_s)],
            start_new_session=True,
        )
        try:
            fcntl.ioctl(self._fd, FIFREEZE)
        except OSError as e:
            self._guard.kill()
            pytest.skip(f"cannot freeze a filesystem here: {e}")
        self.frozen = True

    def thaw(self) -> None:
        if self.frozen and self._fd is not None:
            try:
                fcntl.ioctl(self._fd, FITHAW)
            except OSError:
                pass  # the guard thawed it already
            self.frozen = False
        if self._guard is not None:
            self._guard.kill()
            self._guard.wait()
            self._guard = None

    def fill(self) -> Path:
        """Take every free block (a real ENOSPC for whoever writes next); returns the filler,
        whose removal frees the space again."""
        filler = self.path / "filler"
        fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            for size in (1 << 20, 1 << 16, 1 << 12, 1 << 9):  # the last blocks are small
                chunk = b"\0" * size
                try:
                    while os.write(fd, chunk):
                        pass
                except OSError:
                    pass  # ENOSPC: full, at this size
        finally:
            os.close(fd)
        return filler

    def unmount(self) -> None:
        self.thaw()
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
            # Lazy: a process of the test still holding a file there must not fail teardown.
            _run("umount", "-l", str(self.path))
