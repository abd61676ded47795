"""Shell commands of bash apps in threads die with their executor, even one started in the
moment the executor shuts down."""

from __future__ import annotations

import signal
import subprocess
import threading

from taskscope.executors import commands


def start_tracked(owner: commands.CommandOwner) -> subprocess.Popen:
    """What a bash app does in one of the executor's threads: Popen, then track."""
    started: list[subprocess.Popen] = []

    def run() -> None:
        commands.adopt_thread(owner)
        proc = subprocess.Popen(["sleep", "30"], start_new_session=True)
        commands.track(proc)
        started.append(proc)
        proc.wait()
        commands.untrack(proc)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(timeout=20)
    assert not thread.is_alive(), "the command outlived its executor's shutdown"
    return started[0]


def test_a_command_tracked_after_its_owner_closed_is_killed():
    owner = commands.CommandOwner()
    assert commands.close(owner) == 0
    proc = start_tracked(owner)
    assert proc.returncode == -signal.SIGKILL


def test_close_kills_running_commands_of_its_owner_only():
    mine, theirs = commands.CommandOwner(), commands.CommandOwner()
    procs = []
    for owner in (mine, theirs):
        proc = subprocess.Popen(["sleep", "30"], start_new_session=True)
        owner.running.add(proc)
        procs.append(proc)
    try:
        assert commands.close(mine) == 1
        assert procs[0].wait(timeout=10) == -signal.SIGKILL
        assert procs[1].poll() is None
    finally:
        commands.close(theirs)
    assert procs[1].wait(timeout=10) == -signal.SIGKILL
