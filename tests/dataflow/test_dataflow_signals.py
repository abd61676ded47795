"""SIGTERM and Ctrl-C while a workflow waits: the run ends as aborted, no worker is left."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import psutil
import pytest

import taskscope

SCRIPT = textwrap.dedent("""
    import sys
    import taskscope
    from taskscope import python_app
    from taskscope.config import Config
    from taskscope.executors import HighThroughputExecutor

    class StatusFileHub:
        workflow_name = "signals"
        workflow_version = None

        def __init__(self, path):
            self.path, self.status = path, None

        def start(self, run_id, run_dir):
            pass

        def send(self, message):
            if type(message).__name__ == "WorkflowEnd":
                self.status = message.status

        def wrap(self, func, **ids):
            return func

        def close(self):
            with open(self.path, "w") as f:
                f.write(str(self.status))

    @python_app
    def sleepy(pid_dir):
        import os, time
        open(os.path.join(pid_dir, str(os.getpid())), "w").close()
        time.sleep(60)

    status_file, pid_dir, run_dir = sys.argv[1:4]
    taskscope.load(Config(executors=[HighThroughputExecutor(max_workers=2)],
                          monitoring=StatusFileHub(status_file), run_dir=run_dir))
    futures = [sleepy(pid_dir) for _ in range(2)]
    [f.result() for f in futures]
""")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_while_waiting_aborts_the_run_and_stops_workers(tmp_path, signum):
    script = tmp_path / "flow.py"
    script.write_text(SCRIPT)
    pid_dir = tmp_path / "pids"
    pid_dir.mkdir()
    status_file = tmp_path / "status"
    package_parent = os.path.dirname(os.path.dirname(taskscope.__file__))
    env = dict(os.environ, PYTHONPATH=package_parent)
    proc = subprocess.Popen(
        [sys.executable, str(script), str(status_file), str(pid_dir), str(tmp_path / "runinfo")],
        env=env,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        while len(os.listdir(pid_dir)) < 2:
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "tasks never started"
            time.sleep(0.05)
        workers = [int(p) for p in os.listdir(pid_dir)]
        proc.send_signal(signum)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert status_file.read_text() == "aborted"
    for pid in workers:
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE, (
            f"worker {pid} survived"
        )


def test_sigterm_handler_chains_the_previous_one_and_is_restored(tmp_path):
    from taskscope.config import Config

    seen = []

    def previous(signum, frame):
        seen.append(signum)

    old = signal.signal(signal.SIGTERM, previous)
    try:
        dfk = taskscope.load(Config(run_dir=str(tmp_path)))
        os.kill(os.getpid(), signal.SIGTERM)
        deadline = time.monotonic() + 5
        while not seen and time.monotonic() < deadline:
            time.sleep(0.01)
        assert seen == [signal.SIGTERM]
        assert dfk.run_status() == "aborted"
        dfk.cleanup()
        assert signal.getsignal(signal.SIGTERM) is previous
    finally:
        signal.signal(signal.SIGTERM, old)
