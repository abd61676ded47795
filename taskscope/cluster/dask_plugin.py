"""The worker plugin that tells the monitoring wrapper its worker's block (imports Dask)."""

from __future__ import annotations

import os
from typing import Any

from distributed.diagnostics.plugin import WorkerPlugin

BLOCK_ENV = "TASKSCOPE_BLOCK_ID"


class BlockIdPlugin(WorkerPlugin):
    """Sets ``TASKSCOPE_BLOCK_ID`` in each worker process, which the wrapper reports per try.

    A Dask worker runs in its own process, so setting it once at worker start covers every
    task that worker runs. dask-jobqueue names the workers of a job with several processes
    ``<job>-<i>``; the block is then the job.
    """

    name = "taskscope-block-id"

    def __init__(self, multi_process_jobs: bool) -> None:
        self.multi_process_jobs = multi_process_jobs

    def setup(self, worker: Any) -> None:
        name = str(worker.name)
        head, _, tail = name.rpartition("-")
        block = head if self.multi_process_jobs and head and tail.isdigit() else name
        os.environ[BLOCK_ENV] = block
