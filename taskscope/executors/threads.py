"""``ThreadPoolExecutor``: tasks run in threads of the workflow's own process."""

from __future__ import annotations

import concurrent.futures
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from taskscope.errors import ExecutorError
from taskscope.executors import commands
from taskscope.executors.base import Executor


class ThreadPoolExecutor(Executor):
    """Runs each task in one of ``max_threads`` threads (good for I/O-bound or bash apps)."""

    def __init__(
        self,
        label: str = "threads",
        max_threads: int | None = 2,
        thread_name_prefix: str = "",
        storage_access: Any = None,
        working_dir: str | None = None,
    ):
        super().__init__(label)
        if max_threads is None:
            max_threads = 2
        if isinstance(max_threads, bool) or not isinstance(max_threads, int) or max_threads < 1:
            raise ValueError(
                f"ThreadPoolExecutor(max_threads=...) must be an int >= 1, got {max_threads!r}"
            )
        self.max_threads = max_threads
        self.thread_name_prefix = thread_name_prefix or f"taskscope-{label}"
        self.storage_access = storage_access
        self.working_dir = working_dir
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._commands = commands.CommandOwner()

    def start(self) -> None:
        self._commands = commands.CommandOwner()
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=self.max_threads,
            thread_name_prefix=self.thread_name_prefix,
            initializer=commands.adopt_thread,
            initargs=(self._commands,),
        )

    def submit(
        self,
        func: Callable[..., Any],
        resource_specification: dict[str, Any],
        *args: Any,
        **kwargs: Any,
    ) -> Future:
        if self._pool is None:
            raise ExecutorError(self.label, "not started (or already shut down)")
        return self._pool.submit(func, *args, **kwargs)

    def shutdown(self, wait: bool = True) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            # Queued tasks are cancelled and shell commands of running bash apps killed;
            # running Python tasks are waited for (a thread cannot be killed).
            pool.shutdown(wait=False, cancel_futures=True)
            commands.close(self._commands)
            if wait:
                pool.shutdown(wait=True)
