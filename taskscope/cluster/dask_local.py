"""A Dask cluster on this machine whose processes never re-import the user's script.

``LocalCluster`` starts workers with multiprocessing's spawn, which imports the ``__main__``
module again in every worker, so a Parsl-style script without an
``if __name__ == "__main__"`` guard would run its workflow once per worker. Here the scheduler
and every worker are ``python -m dask spec`` subprocesses instead (the pieces of Dask's
SubprocessCluster), with two changes: each worker gets its name (so tries and nodes can name
their block), and each process writes its log to a file in the run directory, where Dask's
own version would print worker logs on the terminal and leave the scheduler's stderr in a
pipe nobody reads (which blocks the scheduler once the pipe is full).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from distributed.deploy.spec import SpecCluster
from distributed.deploy.subprocess import SubprocessScheduler, SubprocessWorker

SCHEDULER_START_TIMEOUT = 60.0


def _dask_spec_command(spec: dict[str, Any], scheduler: str | None = None) -> list[str]:
    cmd = [sys.executable, "-m", "dask", "spec"]
    if scheduler is not None:
        cmd.append(scheduler)
    return cmd + ["--spec", json.dumps(spec)]


def _child_environment() -> dict[str, str]:
    """This process's environment, with its import path beyond the interpreter's own.

    The scheduler unpickles tasks and the workers run them, so both must import what the
    client imports: the script's directory above all (which ``python -m dask`` would not put
    on its path), as multiprocessing's spawn would have given them.
    """
    own = {os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix)}
    extra = []
    for entry in sys.path:
        path = os.path.realpath(entry or os.getcwd())
        if os.path.isdir(path) and not any(path.startswith(o + os.sep) for o in own):
            extra.append(path)
    env = dict(os.environ)
    inherited = env.get("PYTHONPATH", "")
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(extra + ([inherited] if inherited else [])))
    return env


async def _spawn(cmd: list[str], log_path: Path) -> asyncio.subprocess.Process:
    with open(log_path, "ab") as log:  # noqa: ASYNC230 - a local append open, at start only
        return await asyncio.create_subprocess_exec(
            *cmd,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            env=_child_environment(),
        )


class LoggedScheduler(SubprocessScheduler):
    """A scheduler subprocess that logs to ``log_dir/dask-scheduler.log``."""

    def __init__(self, log_dir: str, scheduler_kwargs: dict[str, Any] | None = None) -> None:
        super().__init__(scheduler_kwargs=scheduler_kwargs)
        self.log_path = Path(log_dir) / "dask-scheduler.log"

    async def _start(self) -> None:
        scheduler_file = Path(self.scheduler_kwargs["scheduler_file"])
        spec = {"cls": "distributed.Scheduler", "opts": self.scheduler_kwargs}
        self.process = await _spawn(_dask_spec_command(spec), self.log_path)
        deadline = time.monotonic() + SCHEDULER_START_TIMEOUT
        while self.process.returncode is None and time.monotonic() < deadline:
            try:
                # A few hundred bytes from local disk: not worth a thread per poll.
                self.address = json.loads(scheduler_file.read_text())["address"]  # noqa: ASYNC240
                return
            except (OSError, ValueError, KeyError):  # not written (completely) yet
                await asyncio.sleep(0.05)
        raise RuntimeError(
            f"the Dask scheduler did not start (exit code {self.process.returncode}); "
            f"see {self.log_path}"
        )


class LoggedWorker(SubprocessWorker):
    """A nanny subprocess, named, logging to ``log_dir/dask-worker-<name>.log``."""

    def __init__(self, scheduler: str, log_dir: str, name: Any = None, **kwargs: Any) -> None:
        worker_kwargs = dict(kwargs.pop("worker_kwargs", None) or {})
        if name is not None:
            worker_kwargs["name"] = name
        super().__init__(scheduler, name=name, worker_kwargs=worker_kwargs, **kwargs)
        self.log_path = Path(log_dir) / f"dask-worker-{name}.log"

    async def _start(self) -> None:
        spec = {"cls": self.worker_class, "opts": self.worker_kwargs}
        self.process = await _spawn(_dask_spec_command(spec, self.scheduler), self.log_path)


def subprocess_cluster(n_workers: int, threads_per_worker: int, log_dir: str) -> SpecCluster:
    """A scheduler (no retries after a worker death) and ``n_workers`` nanny-run workers."""
    os.makedirs(log_dir, exist_ok=True)
    scheduler_file = os.path.join(tempfile.gettempdir(), f"taskscope-dask-{uuid.uuid4().hex}")
    scheduler = {
        "cls": LoggedScheduler,
        "options": {
            "log_dir": log_dir,
            "scheduler_kwargs": {
                "scheduler_file": scheduler_file,
                "host": "127.0.0.1",
                "dashboard": False,
                # taskscope retries a try whose worker died; Dask must not run it again first.
                "allowed_failures": 0,
            },
        },
    }
    worker = {
        "cls": LoggedWorker,
        "options": {
            "log_dir": log_dir,
            "worker_class": "distributed.Nanny",
            "worker_kwargs": {"nthreads": threads_per_worker, "host": "127.0.0.1"},
        },
    }
    workers = {str(i): worker for i in range(n_workers)}
    return SpecCluster(
        workers=workers,
        scheduler=scheduler,
        worker=worker,
        name="taskscope-local",
        silence_logs=logging.ERROR,
    )
