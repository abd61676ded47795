"""Shell commands started by tasks running in this process (bash apps in threads).

A worker process is killed with everything it started; a thread cannot be, so executors
that run tasks in threads kill the commands registered here when they shut down.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading

_running: set[subprocess.Popen] = set()
_lock = threading.Lock()


def track(proc: subprocess.Popen) -> None:
    with _lock:
        _running.add(proc)


def untrack(proc: subprocess.Popen) -> None:
    with _lock:
        _running.discard(proc)


def kill_process_group(proc: subprocess.Popen) -> None:
    """SIGKILL the command's whole process group (it runs in its own session)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        proc.kill()
    proc.wait()


def kill_all() -> int:
    """Kill every tracked command; returns how many there were."""
    with _lock:
        procs = list(_running)
    for proc in procs:
        kill_process_group(proc)
    return len(procs)
