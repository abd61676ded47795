"""The writer process: receives every monitoring message and owns the database.

Why a process of its own: writing SQLite rows costs ~50-100 µs per task, and in the workflow
process that CPU (and the GIL) is taken from the kernel, which on a 2-core machine is what
limits a stream of short tasks. In its own process, at a lower priority while it keeps up
(``priority.WriterPriority``), the writer uses the spare core and lags behind a burst rather
than slowing it.

Parent side (``WriterProcess``, in the workflow process): starts the child and waits until it
has opened the database and bound the hub port (so mistakes are errors at ``load()``), then
forwards the kernel's messages from a ``MessageBuffer`` in one frame every
``FORWARD_PERIOD`` (one ``list.append`` per message on the kernel's threads). At close it
sends the last frame and the close frame, and waits for the child to finish.

Child side (``main``): the protocol with the parent is one JSON line each way on stdin and
stdout (the configuration; then ``ready``/``error``, and ``failed``/``done`` lines). The child
stops on the close frame, or when its stdin reads EOF: the parent died (SIGKILL included);
it then writes what it received and exits, leaving the run 'running' with a stale heartbeat.
"""

from __future__ import annotations

import json
import logging
import os
import select
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import zmq

from taskscope.monitoring.auth import FrameSealer
from taskscope.monitoring.buffer import MessageBuffer
from taskscope.monitoring.errors import MonitoringError
from taskscope.store.messages import encode_batch

logger = logging.getLogger("taskscope.monitoring")

FORWARD_PERIOD = 0.05
START_TIMEOUT = 60.0
# The child imports only the store, ZeroMQ and this package's writer-side modules: the package
# roots load their names lazily (``taskscope/__init__.py``), so no stand-in modules are needed
# to keep the workflow engine out (``tests/test_import_boundaries.py`` checks it).
_CHILD_MAIN = "from taskscope.monitoring.hubprocess import main; main()"


class WriterProcess:
    """The workflow process's handle on its writer process."""

    def __init__(self, config: dict[str, Any], log_path: str | None) -> None:
        self.config = config
        self.log_path = log_path
        self.buffer = MessageBuffer()
        self.port: int | None = None
        self.error: str | None = None  # set when the writer reports a failure or dies
        self.cpu_seconds = 0.0
        self.dropped = 0
        self._proc: subprocess.Popen | None = None
        self._context: zmq.Context | None = None
        self._push: zmq.Socket | None = None
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._send_lock = threading.Lock()
        self._stdout_buffer = b""

    # -- starting ------------------------------------------------------------------------

    def start(self) -> int:
        """Start the child; returns the hub port. MonitoringError with the child's reason."""
        package_dir = Path(__file__).resolve().parent.parent
        stderr: Any = subprocess.DEVNULL
        if self.log_path:
            try:
                stderr = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child
            except OSError:
                stderr = subprocess.DEVNULL
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(package_dir.parent), env.get("PYTHONPATH", "")) if p
        )
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-c", _CHILD_MAIN],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=stderr,
                env=env,
                # Its own session: Ctrl-C in the terminal must not kill the writer before the
                # workflow has written the run's end.
                start_new_session=True,
            )
        finally:
            if stderr is not subprocess.DEVNULL:
                stderr.close()
        assert self._proc.stdin is not None
        self._proc.stdin.write(json.dumps(self.config).encode() + b"\n")
        self._proc.stdin.flush()
        reply = self._read_line(START_TIMEOUT)
        if reply is None or reply.get("event") != "ready":
            why = reply.get("error") if reply else self._why_dead()
            self._kill()
            raise MonitoringError(why or "the monitoring writer process did not start")
        self.port = int(reply["port"])
        self._sealer = FrameSealer(self.config["secret"], self.config["run_id"])
        self._context = zmq.Context()
        self._push = self._context.socket(zmq.PUSH)
        self._push.setsockopt(zmq.SNDHWM, 0)
        self._push.setsockopt(zmq.LINGER, 5000)
        self._push.connect(f"tcp://{self.config['connect_address']}:{self.port}")
        self._thread = threading.Thread(
            target=self._forward_loop, name="taskscope-monitoring-forwarder", daemon=True
        )
        self._thread.start()
        return self.port

    # -- running -------------------------------------------------------------------------

    def _forward_loop(self) -> None:
        while not self._stopping.wait(FORWARD_PERIOD):
            self._forward()
            self._check_child()

    def _forward(self) -> None:
        with self._send_lock:
            batch = self.buffer.take()
            if batch and self._push is not None and self.error is None:
                self._push.send(self._sealer.seal(encode_batch(batch)), copy=False)

    def _check_child(self) -> None:
        if self.error is not None or self._proc is None:
            return
        while True:
            reply = self._read_line(0)
            if reply is None:
                break
            if reply.get("event") == "failed":
                self.error = reply.get("error") or "the monitoring writer failed"
                logger.error("monitoring writer failed: %s", self.error)
        if self.error is None and self._proc.poll() is not None:
            self.error = self._why_dead()

    # -- stopping ------------------------------------------------------------------------

    def stop(self, token: str, timeout: float) -> None:
        """Send what is left and the close frame; wait for the child to finish writing."""
        from taskscope.monitoring.receiver import close_frame

        self._stopping.set()
        if self._thread is not None:
            self._thread.join()
        proc = self._proc
        if proc is None:
            return
        try:
            self._forward()
            if self._push is not None:
                self._push.send(self._sealer.seal(close_frame(token)))
        except zmq.ZMQError as e:
            self.error = self.error or f"cannot reach the monitoring writer: {e}"
        deadline = time.monotonic() + timeout
        done = False
        while not done:
            reply = self._read_line(max(0.0, deadline - time.monotonic()))
            if reply is None:
                break
            event = reply.get("event")
            if event == "failed":
                self.error = self.error or reply.get("error")
            elif event == "done":
                done = True
                self.cpu_seconds = float(reply.get("cpu_seconds", 0.0))
                self.dropped = int(reply.get("dropped", 0))
                if reply.get("error"):
                    self.error = self.error or reply["error"]
        if not done:
            self.error = self.error or (
                f"the monitoring writer did not finish within {timeout:.0f} s"
                if proc.poll() is None
                else self._why_dead()
            )
            self._kill()
        else:
            try:
                proc.wait(timeout=max(1.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self._kill()
        self._close_pipes()
        if self._push is not None:
            self._push.close(linger=0)
            self._push = None
        if self._context is not None:
            self._context.term()
            self._context = None

    def _kill(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()
        self._close_pipes()

    def _close_pipes(self) -> None:
        if self._proc is None:
            return
        for pipe in (self._proc.stdin, self._proc.stdout):
            if pipe is not None:
                try:
                    pipe.close()
                except OSError:
                    pass

    # -- the JSON-lines channel ------------------------------------------------------------

    def _read_line(self, timeout: float) -> dict | None:
        """The child's next line, or None when none came within ``timeout`` (or EOF)."""
        proc = self._proc
        assert proc is not None and proc.stdout is not None
        fd = proc.stdout.fileno()
        deadline = time.monotonic() + timeout
        while b"\n" not in self._stdout_buffer:
            left = deadline - time.monotonic()
            if not select.select([fd], [], [], max(0.0, left))[0]:
                return None
            chunk = os.read(fd, 65536)
            if not chunk:
                return None
            self._stdout_buffer += chunk
        line, self._stdout_buffer = self._stdout_buffer.split(b"\n", 1)
        try:
            return json.loads(line)
        except ValueError:
            return {"event": "failed", "error": f"unreadable reply from the writer: {line!r}"}

    def _why_dead(self) -> str:
        proc = self._proc
        code = proc.poll() if proc is not None else None
        where = f"; see {self.log_path}" if self.log_path else ""
        if code is None:
            return "the monitoring writer process does not answer" + where
        return f"the monitoring writer process exited with status {code}{where}"


# -- the child -------------------------------------------------------------------------


def _reply(**fields: Any) -> None:
    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()


def main() -> None:
    """Entry point of the writer process (see the module docstring)."""
    from taskscope.monitoring.priority import WriterPriority
    from taskscope.monitoring.receiver import HubService

    config = json.loads(sys.stdin.readline())
    if config.get("log_level"):
        logging.basicConfig(
            level=config["log_level"], format="%(asctime)s %(name)s %(levelname)s %(message)s"
        )
    priority = WriterPriority()
    priority.start()
    service = HubService(
        config["db_path"],
        config["run_id"],
        config["bind_address"],
        config["port"],
        config["heartbeat_interval"],
        token=config["token"],
        secret=config["secret"],
        lag_observer=priority.observe,
    )
    try:
        port = service.open()
    except MonitoringError as e:
        _reply(event="error", error=str(e))
        return
    _reply(event="ready", port=port)

    failure_reported = threading.Event()

    def report_failure() -> None:
        # The loop sets service.error and then finishes up; tell the parent at once.
        while not failure_reported.wait(0.05):
            if service.error is not None:
                _reply(event="failed", error=repr(service.error))
                return

    watcher = threading.Thread(target=report_failure, daemon=True)
    watcher.start()
    service.run(parent_pid=config["parent_pid"], parent_pipe=sys.stdin.fileno())
    failure_reported.set()
    watcher.join()
    if service.error is not None and not service.closed_by_owner:
        _reply(event="failed", error=repr(service.error))
    if not service.closed_by_owner:
        return  # the parent is gone: nobody reads our replies
    error = repr(service.error) if service.error is not None else None
    _reply(event="done", cpu_seconds=service.cpu_seconds, dropped=service.dropped, error=error)
