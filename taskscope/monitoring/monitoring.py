"""``MonitoringHub``: the configuration object users put in ``Config(monitoring=...)``.

It is also the kernel's only handle on monitoring (docs/architecture.md): ``start``,
``send``, ``wrap`` and ``close``. Arguments are checked when the hub is constructed, the
database and port when it starts, so mistakes surface at ``load()`` and never in a thread.
"""

from __future__ import annotations

import logging
import os
import secrets
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from taskscope.monitoring import wrapper
from taskscope.monitoring.auth import new_secret
from taskscope.monitoring.buffer import MessageBuffer
from taskscope.monitoring.endpoint import database_path
from taskscope.monitoring.errors import MonitoringError, MonitoringWarning
from taskscope.monitoring.hubprocess import WriterProcess
from taskscope.monitoring.messages import Message
from taskscope.monitoring.receiver import resolve_bind_address
from taskscope.monitoring.stall import SpoolStallWatch
from taskscope.store.spool import spool_dir

logger = logging.getLogger("taskscope.monitoring")

HEARTBEAT_INTERVAL = 2.0


def _check_type(name: str, value: Any, types: tuple[type, ...], allow_none: bool) -> None:
    if value is None and allow_none:
        return
    # bool is an int; accept it only where a bool is asked for.
    ok = False if isinstance(value, bool) and bool not in types else isinstance(value, types)
    if not ok:
        wanted = " or ".join(t.__name__ for t in types) + (" or None" if allow_none else "")
        raise TypeError(f"MonitoringHub({name}=...) must be {wanted}, not {value!r}")


class MonitoringHub:
    """Records task states and resource usage of a workflow to an SQLite database.

    Parameters follow Parsl's ``MonitoringHub``: ``hub_address``/``hub_port`` is where worker
    processes send their messages (``None`` or ``0`` picks a free port), ``logging_endpoint``
    the database (default ``sqlite:///monitoring.db`` in the current directory), and
    ``resource_monitoring_interval`` the seconds between resource samples of a running try
    (0: only the final sample of each try).
    """

    def __init__(
        self,
        hub_address: str | None = None,
        hub_port: int | None = None,
        resource_monitoring_enabled: bool = True,
        resource_monitoring_interval: float = 30,
        monitoring_debug: bool = False,
        logging_endpoint: str | None = None,
        workflow_name: str | None = None,
        workflow_version: str | None = None,
    ) -> None:
        _check_type("hub_address", hub_address, (str,), True)
        _check_type("hub_port", hub_port, (int,), True)
        _check_type("resource_monitoring_enabled", resource_monitoring_enabled, (bool,), False)
        _check_type(
            "resource_monitoring_interval", resource_monitoring_interval, (int, float), False
        )
        _check_type("monitoring_debug", monitoring_debug, (bool,), False)
        _check_type("workflow_name", workflow_name, (str,), True)
        _check_type("workflow_version", workflow_version, (str,), True)
        if hub_address is not None and not hub_address.strip():
            raise ValueError("MonitoringHub(hub_address=...) must not be empty")
        if hub_address is not None and "\0" in hub_address:
            raise ValueError(f"MonitoringHub(hub_address={hub_address!r}) contains a NUL byte")
        if hub_port is not None and not 0 <= hub_port <= 65535:
            raise ValueError(f"MonitoringHub(hub_port={hub_port}) must be between 0 and 65535")
        if not resource_monitoring_interval >= 0 or resource_monitoring_interval == float("inf"):
            raise ValueError(
                "MonitoringHub(resource_monitoring_interval=...) must be a finite number of "
                f"seconds >= 0, not {resource_monitoring_interval!r}"
            )
        self.hub_address = hub_address
        self.hub_port = hub_port
        self.resource_monitoring_enabled = resource_monitoring_enabled
        self.resource_monitoring_interval = float(resource_monitoring_interval)
        self.monitoring_debug = monitoring_debug
        self._writer: WriterProcess | None = None
        self._stall_watch: SpoolStallWatch | None = None
        self.logging_endpoint = logging_endpoint  # checked, and db_path set, by the setter
        self.workflow_name = workflow_name
        self.workflow_version = workflow_version
        self.heartbeat_interval = HEARTBEAT_INTERVAL

        self.run_id: str | None = None
        # Where send() puts messages; the writer's forwarder takes them from here.
        self.buffer = MessageBuffer()
        self._target: wrapper.HubTarget | None = None
        self._token = secrets.token_hex(8)
        self._closed = False
        self._warned = False
        self._log_handler: logging.Handler | None = None

    def __repr__(self) -> str:
        return (
            f"MonitoringHub(hub_address={self.hub_address!r}, hub_port={self.hub_port!r}, "
            f"resource_monitoring_enabled={self.resource_monitoring_enabled!r}, "
            f"resource_monitoring_interval={self.resource_monitoring_interval!r}, "
            f"logging_endpoint={self.logging_endpoint!r}, "
            f"workflow_name={self.workflow_name!r}, workflow_version={self.workflow_version!r})"
        )

    @property
    def logging_endpoint(self) -> str | None:
        return self._logging_endpoint

    @logging_endpoint.setter
    def logging_endpoint(self, endpoint: str | None) -> None:
        # Settable until the hub starts, as in Parsl (whose tests point a constructed
        # hub at a per-test database): the path is checked and resolved here.
        if self._writer is not None:
            raise MonitoringError(
                "logging_endpoint cannot change once the hub has started; make a new hub"
            )
        self.db_path: Path = database_path(endpoint)
        self._logging_endpoint = endpoint

    # -- the kernel's four calls ---------------------------------------------------------

    def start(self, run_id: str, run_dir: str) -> None:
        """Open the database, bind the port, start receiving. MonitoringError if impossible."""
        if self._writer is not None:
            raise MonitoringError("this MonitoringHub has already been started; make a new one")
        self.run_id = run_id
        log_path = self._setup_logging(run_dir)
        secret = new_secret()  # this run's only: authenticates its frames (monitoring/auth.py)
        address = self.hub_address or "127.0.0.1"
        bind = resolve_bind_address(address)
        connect = "127.0.0.1" if bind == "*" else bind
        writer = WriterProcess(
            {
                "db_path": str(self.db_path),
                "run_id": run_id,
                "bind_address": address,
                "connect_address": connect,
                "port": self.hub_port or 0,
                "heartbeat_interval": self.heartbeat_interval,
                "token": self._token,
                "secret": secret,
                "parent_pid": os.getpid(),
                "log_level": "DEBUG" if self.monitoring_debug else "INFO",
            },
            log_path,
        )
        writer.buffer = self.buffer
        try:
            port = writer.start()
        except MonitoringError:
            self._teardown_logging()
            raise
        self._writer = writer
        if writer.spool is not None:
            # In the writer's words, on its stderr (WriterProcess._say: one prefix for all).
            self._stall_watch = SpoolStallWatch(writer.spool, writer._say, str(self.db_path))
            self._stall_watch.start()
        self._target = wrapper.HubTarget(
            run_id=run_id,
            address=connect,
            port=port,
            token=self._token,
            hub_pid=os.getpid(),
            resource_monitoring_enabled=self.resource_monitoring_enabled,
            resource_monitoring_interval=self.resource_monitoring_interval,
            secret=secret,
        )
        wrapper.register_local_hub(self._token, self)
        logger.info("monitoring run %s into %s, hub port %s", run_id, self.db_path, port)

    def send(self, message: Message) -> None:
        """Queue ``message`` for the writer. Thread-safe; never blocks."""
        writer = self._writer
        if writer is None or writer.error is not None or self._closed:
            self._warn_lost()
            return
        self.buffer.add(message)

    def try_ended(self) -> None:
        """Nothing to do: the forwarder sends this process's messages every 50 ms (Sink)."""

    def wrap(
        self,
        func: Callable[..., Any],
        *,
        run_id: str,
        task_id: int,
        try_id: int,
        executor_label: str,
    ) -> Callable[..., Any]:
        """A picklable callable that runs ``func`` and reports the try from the worker."""
        target = self._target
        if target is None:
            raise MonitoringError("MonitoringHub.wrap() called before start()")
        if run_id != target.run_id:
            raise MonitoringError(f"this hub records run {target.run_id}, not {run_id}")
        return wrapper.MonitoredCall(func, target, task_id, try_id)

    def close(self) -> None:
        """Write everything received, ANALYZE, stop. Idempotent.

        Raises MonitoringError if the writer failed during the run (the database then lacks
        what arrived after the failure).
        """
        if self._closed:
            return
        self._closed = True
        writer = self._writer
        wrapper.unregister_local_hub(self._token)
        if writer is None:
            return
        try:
            # No time limit: the writer is waited for while it makes progress (see stop()).
            writer.stop()
        finally:
            if self._stall_watch is not None:
                self._stall_watch.stop()
            self._teardown_logging()
        if writer.error is not None:
            raise MonitoringError(
                f"monitoring stopped recording during the run: {writer.error}; "
                f"{self.db_path} lacks what happened after that (what was spooled before it "
                f"is kept in {spool_dir(self.db_path)}: `taskscope recover {self.db_path}` "
                "writes it once the cause is fixed)"
            )

    # -- helpers for executors -----------------------------------------------------------

    @property
    def port(self) -> int | None:
        return self._target.port if self._target else None

    @property
    def writer_cpu_seconds(self) -> float:
        """CPU time the writer process's receive-and-write loop used (known after close())."""
        return self._writer.cpu_seconds if self._writer else 0.0

    @property
    def messages_dropped(self) -> int:
        """Frames the writer could not decode (known after close())."""
        return self._writer.dropped if self._writer else 0

    @property
    def writer_pid(self) -> int | None:
        proc = self._writer._proc if self._writer else None
        return proc.pid if proc is not None else None

    def _warn_lost(self) -> None:
        if self._warned:
            return
        self._warned = True
        if self._writer is None:
            why = "the hub was not started"
        elif self._writer.error is not None:
            why = f"the monitoring writer failed: {self._writer.error}"
        else:
            why = "the hub is closed"
        warnings.warn(
            f"monitoring is not recording ({why}); {self.db_path} will be incomplete",
            MonitoringWarning,
            stacklevel=3,
        )

    def _setup_logging(self, run_dir: str) -> str | None:
        """Log to run_dir/monitoring.log (the writer process appends to it too)."""
        if not run_dir:
            return None
        path = os.path.join(run_dir, "monitoring.log")
        try:
            os.makedirs(run_dir, exist_ok=True)
            handler = logging.FileHandler(path)
        except OSError as e:
            logger.warning("cannot write the monitoring log in %s: %s", run_dir, e)
            return None
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
        handler.setLevel(logging.DEBUG if self.monitoring_debug else logging.INFO)
        logger.addHandler(handler)
        if logger.level == logging.NOTSET or logger.level > handler.level:
            logger.setLevel(handler.level)
        self._log_handler = handler
        return path

    def _teardown_logging(self) -> None:
        if self._log_handler is not None:
            logger.removeHandler(self._log_handler)
            self._log_handler.close()
            self._log_handler = None
