"""Shell commands started by tasks running in this process (bash apps in threads).

A worker process is killed with everything it started; a thread cannot be, so executors
that run tasks in threads kill the commands their threads started when they shut down.

Each such executor gives its threads a ``CommandOwner`` (through the thread pool's
initializer). Closing the owner kills the commands its threads have running and marks it
closed, so a command that one of its threads starts afterwards is killed as soon as it is
tracked. Without that mark, a command started in the moment between a shutdown's kill and
the thread noticing the shutdown (a bash app that had just called ``Popen``) ran to its end
while ``cleanup()`` waited for it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading


class CommandOwner:
    """The commands started by the threads of one executor."""

    __slots__ = ("closed", "running")

    def __init__(self) -> None:
        self.closed = False
        self.running: set[subprocess.Popen] = set()


_lock = threading.Lock()
_thread = threading.local()  # .owner: the CommandOwner of this thread's executor, if any
_unowned = CommandOwner()  # commands started by threads no executor gave an owner


def adopt_thread(owner: CommandOwner) -> None:
    """Make ``owner`` the owner of commands started by the calling thread (an initializer)."""
    _thread.owner = owner


def _owner() -> CommandOwner:
    return getattr(_thread, "owner", None) or _unowned


def track(proc: subprocess.Popen) -> None:
    owner = _owner()
    with _lock:
        if not owner.closed:
            owner.running.add(proc)
            return
    kill_process_group(proc)  # its executor is shutting down: it must not outlive it


def untrack(proc: subprocess.Popen) -> None:
    owner = _owner()
    with _lock:
        owner.running.discard(proc)


def kill_process_group(proc: subprocess.Popen) -> None:
    """SIGKILL the command's whole process group (it runs in its own session)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        proc.kill()
    proc.wait()


def close(owner: CommandOwner) -> int:
    """Kill the owner's running commands, and any its threads start from now on; returns
    how many were running."""
    with _lock:
        owner.closed = True
        procs = list(owner.running)
    for proc in procs:
        kill_process_group(proc)
    return len(procs)
