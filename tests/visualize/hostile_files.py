"""Hostile stdout/stderr paths for a database to name: each is something the dashboard must
not open, read or block on (a FIFO, /dev/zero, /proc/self/environ, a 10 GB sparse file, ...),
with the words its reason must contain."""

from __future__ import annotations

import os
from pathlib import Path

TEN_GB = 10 * 2**30


def hostile_paths(folder: Path) -> dict[str, tuple[str, str]]:
    """name -> (path as the database names it, what the reason must say)."""
    fifo = folder / "stdout.fifo"
    os.mkfifo(fifo)
    sparse = folder / "sparse.out"
    with open(sparse, "wb") as handle:
        handle.truncate(TEN_GB)
    directory = folder / "a-directory"
    directory.mkdir()
    (folder / "dangling").symlink_to(folder / "no-such-file")
    (folder / "to-environ").symlink_to("/proc/self/environ")
    (folder / "to-zero").symlink_to("/dev/zero")
    (folder / "to-fifo").symlink_to(fifo)
    (folder / "loop-a").symlink_to(folder / "loop-b")
    (folder / "loop-b").symlink_to(folder / "loop-a")
    return {
        "fifo": (str(fifo), "FIFO"),
        "fifo via symlink": (str(folder / "to-fifo"), "FIFO"),
        "dev zero": ("/dev/zero", "under /dev"),
        "dev zero via symlink": (str(folder / "to-zero"), "under /dev"),
        "proc environ": ("/proc/self/environ", "under /proc"),
        "proc environ via symlink": (str(folder / "to-environ"), "under /proc"),
        "sys": ("/sys/kernel/mm/transparent_hugepage/enabled", "under /sys"),
        "sparse 10 GB": (str(sparse), "binary"),
        "directory": (str(directory), "directory"),
        "dangling symlink": (str(folder / "dangling"), "does not exist"),
        "missing": (str(folder / "never-written.out"), "does not exist"),
        "symlink loop": (str(folder / "loop-a"), "symlink loop"),
    }
