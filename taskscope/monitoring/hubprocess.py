"""The writer process: receives every monitoring message and owns the database.

Why a process of its own: writing SQLite rows costs ~50-100 µs per task, and in the workflow
process that CPU (and the GIL) is taken from the kernel, which on a 2-core machine is what
limits a stream of short tasks. In its own process, at a lower priority while it keeps up
(``priority.WriterPriority``), the writer uses the spare core and lags behind a burst rather
than slowing it.

Nothing handed to monitoring waits in memory for the writer: the workflow process appends
its messages, one frame every ``FORWARD_PERIOD``, to its own stream in the durable spool
beside the database (``store/spool.py``), and the writer's receive loop spools what workers
send. The writer applies the spool (``receiver.HubService``), so it may fall behind by any
amount without losing anything or growing.

Parent side (``WriterProcess``, in the workflow process): starts the child and waits until it
has opened the database and bound the hub port (so mistakes are errors at ``load()``); a
child that dies is started again (``MAX_RESTARTS``) on the same port, and replays what its
predecessor spooled. ``stop`` spools the last frame, says close, and waits as long as the
writer makes progress (no time limit), showing progress on stderr after ``PROGRESS_AFTER_S``.

Child side (``main``): the protocol with the parent is one JSON line each way on stdin and
stdout (the configuration; then ``ready``/``error``; ``delayed``, ``caught_up``, ``progress``,
``failed``, ``done`` lines), and ``close`` on stdin. When its stdin reads EOF the parent died
(SIGKILL included): it writes everything spooled and exits, leaving the run 'running' with a
stale heartbeat.
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
from typing import Any, TextIO

from taskscope.monitoring.buffer import MessageBuffer
from taskscope.monitoring.errors import MonitoringError
from taskscope.store.messages import encode_batch
from taskscope.store.spool import SpoolWriter, new_stream_id, spool_dir

logger = logging.getLogger("taskscope.monitoring")

FORWARD_PERIOD = 0.05
# While the writer process starts (opens the database, binds the port) the workflow waits as
# long as it is alive; after this long without a word it says so on stderr. (A fixed 60 s
# limit failed load() after a filesystem freeze longer than that, with nothing lost or wrong.)
START_SAY_AFTER_S = 5.0
# A writer process that dies is started again this many times in one run.
MAX_RESTARTS = 5
# At close: progress on stderr once the wait is this long, then every PROGRESS_EVERY_S;
# a writer that says nothing for SILENT_S is reported.
PROGRESS_AFTER_S = 2.0
PROGRESS_EVERY_S = 1.0
SILENT_S = 5.0
# A restarted writer listens at least this long before it closes, for the workers' queues.
RECONNECT_GRACE_S = 1.5
# The child imports only the store, ZeroMQ and this package's writer-side modules: the package
# roots load their names lazily (``taskscope/__init__.py``), so no stand-in modules are needed
# to keep the workflow engine out (``tests/test_import_boundaries.py`` checks it).
_CHILD_MAIN = "from taskscope.monitoring.hubprocess import main; main()"


class WriterProcess:
    """The workflow process's handle on its writer process."""

    def __init__(self, config: dict[str, Any], log_path: str | None) -> None:
        self.config = dict(config)
        self.log_path = log_path
        self.db_path = str(config["db_path"])
        self.buffer = MessageBuffer()
        self.port: int | None = None
        self.error: str | None = None  # set when the writer reports a failure or dies
        self.cpu_seconds = 0.0
        self.dropped = 0
        self.restarts = 0
        self.delayed: str | None = None  # why recording is delayed, while it is
        self.applied = 0  # messages the current writer process has written (while closing)
        self.left: int | None = None  # messages spooled and not written (while closing)
        self.stderr: TextIO = sys.stderr
        self.spool: SpoolWriter | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._send_lock = threading.Lock()
        self._stdout_buffer = b""
        self._last_line = time.monotonic()

    # -- starting ------------------------------------------------------------------------

    def start(self) -> int:
        """Start the child; returns the hub port. MonitoringError with the child's reason."""
        # The writer checks the database first (its errors are the clearest); our stream's
        # first segment is made once it is ready, and it tails the stream from then on.
        stream = new_stream_id("kernel")
        self.config["own_streams"] = [stream]
        self._spawn()
        try:
            self.spool = SpoolWriter(spool_dir(self.db_path), stream)
        except OSError as e:
            self._kill()
            raise MonitoringError(
                f"cannot create the monitoring spool {spool_dir(self.db_path)}: {e.strerror or e}"
            ) from e
        self._thread = threading.Thread(
            target=self._forward_loop, name="taskscope-monitoring-forwarder", daemon=True
        )
        self._thread.start()
        if self.port is None:  # _spawn() sets it from the child's "ready" line
            raise MonitoringError("the monitoring writer process did not say its port")
        return self.port

    def _spawn(self) -> None:
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
        self._stdout_buffer = b""
        assert self._proc.stdin is not None
        self._proc.stdin.write(json.dumps(self.config).encode() + b"\n")
        self._proc.stdin.flush()
        reply = self._await_start_line()
        # A locked database delays the start (said on stderr), for as long as the lock lasts.
        while reply is not None and reply.get("event") in ("delayed", "caught_up"):
            self._handle(reply)
            reply = self._await_start_line()
        if reply is None or reply.get("event") != "ready":
            why = reply.get("error") if reply else self._why_dead()
            self._kill()
            raise MonitoringError(why or "the monitoring writer process did not start")
        self.port = int(reply["port"])
        # A restarted writer must listen where the workers already send.
        self.config["port"] = self.port
        self._last_line = time.monotonic()

    def _await_start_line(self) -> dict | None:
        """The starting child's next line, waited for as long as the child lives (a slow or
        frozen filesystem holds it in opening the database); None once it has died."""
        started = time.monotonic()
        told = False
        while True:
            reply = self._read_line(START_SAY_AFTER_S)
            if reply is not None or self._proc is None or self._proc.poll() is not None:
                return reply
            if not told and time.monotonic() - started >= START_SAY_AFTER_S:
                told = True
                self._say(
                    f"waiting for the monitoring writer to open {self.db_path} "
                    f"({time.monotonic() - started:.0f} s so far): is its filesystem slow, "
                    "frozen or hung? The workflow starts once it answers (Ctrl-C stops it)"
                )

    def _restart(self) -> bool:
        """Start a new writer after the last one died; False when that is not possible."""
        why = self._why_dead()
        if self.restarts >= MAX_RESTARTS:
            self.error = f"{why}; it was restarted {MAX_RESTARTS} times, giving up"
            return False
        self.restarts += 1
        logger.warning(
            "%s; starting it again (%d of %d), it writes what the last one spooled",
            why,
            self.restarts,
            MAX_RESTARTS,
        )
        self._close_pipes()
        self.config["restart"] = self.restarts
        try:
            self._spawn()
        except MonitoringError as e:
            self.error = f"{why}, and it could not be restarted: {e}"
            return False
        return True

    # -- running -------------------------------------------------------------------------

    def _forward_loop(self) -> None:
        while not self._stopping.wait(FORWARD_PERIOD):
            self._forward()
            self._check_child()

    def _forward(self) -> None:
        with self._send_lock:
            batch = self.buffer.take()
            if batch and self.spool is not None and self.error is None:
                try:
                    self.spool.append(encode_batch(batch))
                except OSError as e:
                    self.error = f"cannot write the monitoring spool: {e.strerror or e}"

    def flush(self) -> None:
        """Spool everything sent so far now (after this it survives any kill)."""
        self._forward()

    def _check_child(self) -> None:
        if self.error is not None or self._proc is None:
            return
        while True:
            reply = self._read_line(0)
            if reply is None:
                break
            self._handle(reply)
        if self.error is None and self._proc.poll() is not None:
            self._restart()

    def _handle(self, reply: dict) -> dict:
        event = reply.get("event")
        self._last_line = time.monotonic()
        if event == "failed":
            self.error = self.error or reply.get("error") or "the monitoring writer failed"
            logger.error("monitoring writer failed: %s", self.error)
        elif event == "delayed":
            self.delayed = str(reply.get("reason"))
            self._say(
                f"recording is delayed: {self.delayed} (events wait in "
                f"{spool_dir(self.db_path)}; nothing is lost)"
            )
        elif event == "caught_up":
            if self.delayed is not None:
                self._say("recording caught up")
            self.delayed = None
        elif event == "progress":
            self.applied = int(reply.get("applied", 0))
            self.left = int(reply.get("left", 0))
        return reply

    def _say(self, text: str) -> None:
        try:
            self.stderr.write(f"taskscope monitoring: {text}\n")
            self.stderr.flush()
        except (OSError, ValueError):
            pass

    # -- stopping ------------------------------------------------------------------------

    def stop(self) -> None:
        """Spool what is left, say close, and wait while the writer writes it all."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join()
        if self._proc is None:
            return
        self._forward()
        if self.spool is not None:
            self.spool.close()  # our stream is complete
        done = False
        try:
            done = self._close_and_wait()
        except KeyboardInterrupt:
            left = "" if self.left is None else f" {self.left:,} events"
            pid = self._proc.pid if self._proc is not None else "?"
            self._say(
                f"stopped waiting; the writer (pid {pid}) goes on writing{left} into "
                f"{self.db_path} in the background. If it is stopped, nothing is lost: "
                f"`taskscope recover {self.db_path}` writes the rest"
            )
            self._close_pipes()
            raise
        if done and self._proc is not None:
            try:
                self._proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                logger.warning("the monitoring writer did not exit after finishing")
        self._close_pipes()

    def _send_close(self) -> None:
        try:
            assert self._proc is not None and self._proc.stdin is not None
            self._proc.stdin.write(b"close\n")
            self._proc.stdin.flush()
        except (OSError, ValueError):
            pass  # it died: the wait below restarts it

    @property
    def _child(self) -> subprocess.Popen[bytes]:
        if self._proc is None:
            raise MonitoringError("the monitoring writer process was not started")
        return self._proc

    def _close_and_wait(self) -> bool:
        """True once the writer said done; False when it failed or could not go on."""
        self._send_close()
        started = self._last_line = time.monotonic()
        shown_at: float | None = None
        silent_told = False
        rate = _Rate()
        while True:
            reply = self._read_line(0.25)
            now = time.monotonic()
            if reply is not None:
                event = self._handle(reply).get("event")
                if event == "done":
                    self.cpu_seconds += float(reply.get("cpu_seconds", 0.0))
                    self.dropped += int(reply.get("dropped", 0))
                    if reply.get("error"):
                        self.error = self.error or reply["error"]
                    if shown_at is not None:
                        self._say(f"all events written into {self.db_path}")
                    return True
                if event == "progress":
                    rate.add(now, self.applied)
                    silent_told = False
            elif self._child.poll() is not None:
                if self.error is not None or not self._restart():
                    return False
                self._send_close()
                rate = _Rate()
                continue
            if self.error is not None and self._child.poll() is not None:
                return False
            if now - started >= PROGRESS_AFTER_S and (
                shown_at is None or now - shown_at >= PROGRESS_EVERY_S
            ):
                shown_at = now
                self._say(self._progress_line(rate))
            if now - self._last_line >= SILENT_S and not silent_told:
                silent_told = True
                self._say(
                    f"the writer (pid {self._child.pid}) has said nothing for "
                    f"{now - self._last_line:.0f} s (a frozen disk, or a stopped process?); "
                    "still waiting. Ctrl-C stops waiting; nothing spooled is lost"
                )

    def _progress_line(self, rate: _Rate) -> str:
        if self.left is None:
            return f"writing the last events into {self.db_path}..."
        per_s = rate.per_second()
        line = f"writing into {self.db_path}: {self.left:,} events left"
        if self.delayed:
            line += f" (delayed: {self.delayed})"
        elif per_s:
            line += f", {per_s:,.0f} events/s, about {self.left / per_s:,.0f} s to go"
        return line

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
        if proc.stdout.closed:
            return None
        fd = proc.stdout.fileno()
        deadline = time.monotonic() + timeout
        while b"\n" not in self._stdout_buffer:
            left = deadline - time.monotonic()
            if not select.select([fd], [], [], max(0.0, left))[0]:
                return None
            chunk = os.read(fd, 65536)
            if not chunk:
                if proc.poll() is None:
                    time.sleep(min(0.05, max(0.0, left)))  # closing its stdout: exiting
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
        if code < 0:
            return f"the monitoring writer process was killed by signal {-code}{where}"
        return f"the monitoring writer process exited with status {code}{where}"


class _Rate:
    """Events per second over the last few progress reports."""

    def __init__(self) -> None:
        self.samples: list[tuple[float, int]] = []

    def add(self, t: float, applied: int) -> None:
        self.samples.append((t, applied))
        del self.samples[:-10]

    def per_second(self) -> float:
        if len(self.samples) < 2:
            return 0.0
        (t0, a0), (t1, a1) = self.samples[0], self.samples[-1]
        return (a1 - a0) / (t1 - t0) if t1 > t0 else 0.0


# -- the child -------------------------------------------------------------------------

_reply_lock = threading.Lock()


def _reply(**fields: Any) -> None:
    """One JSON line to the parent; nothing when the parent is gone."""
    with _reply_lock:
        try:
            sys.stdout.write(json.dumps(fields) + "\n")
            sys.stdout.flush()
        except (OSError, ValueError):
            pass


def _describe(error: BaseException) -> str:
    if isinstance(error, MonitoringError):
        return str(error)
    return f"{type(error).__name__}: {error}"


def _read_config(fd: int) -> dict[str, Any]:
    """The first line on stdin, read unbuffered: what follows ('close') is for the loop."""
    line = b""
    while not line.endswith(b"\n"):
        chunk = os.read(fd, 1)
        if not chunk:
            break
        line += chunk
    return json.loads(line)


def main() -> None:
    """Entry point of the writer process (see the module docstring)."""
    from taskscope.monitoring.priority import WriterPriority
    from taskscope.monitoring.receiver import HubService

    stdin = sys.stdin.fileno()
    config = _read_config(stdin)
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
        own_streams=tuple(config.get("own_streams", ())),
        lag_observer=priority.observe,
        on_event=lambda event, **fields: _reply(event=event, **fields),
        reconnect_grace_s=RECONNECT_GRACE_S if config.get("restart") else 0.0,
        secret=config["secret"],
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
                _reply(event="failed", error=_describe(service.error))
                return

    watcher = threading.Thread(target=report_failure, daemon=True)
    watcher.start()
    service.run(parent_pid=config["parent_pid"], parent_pipe=stdin)
    failure_reported.set()
    watcher.join()
    if service.error is not None and not service.closed_by_owner:
        _reply(event="failed", error=_describe(service.error))
    if not service.closed_by_owner:
        return  # the parent is gone: nobody reads our replies
    error = _describe(service.error) if service.error is not None else None
    _reply(event="done", cpu_seconds=service.cpu_seconds, dropped=service.dropped, error=error)
