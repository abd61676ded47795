"""What the workflow scripts share: the scripts the fixtures run in their own process
(tests/exports/htex_workflow.py, tests/visualize/real_workflow.py and htex_short_tasks.py,
tests/store/analysis/planted_workflow.py and live_workflow.py) to write a real monitoring
database.

Only the kernel's side lives here. The apps stay in each script: an HTEX worker gets an app
function pickled by value only from the script's ``__main__``; one from this module would be
pickled by reference, and the workers cannot import it.
"""

from __future__ import annotations

import os
from typing import Any

from taskscope.config import Config
from taskscope.executors.base import Executor
from taskscope.monitoring import MonitoringHub


def monitored_config(
    db_path: str | os.PathLike[str],
    run_dir: str,
    executor: Executor,
    *,
    workflow_name: str,
    resource_interval: float,
    **options: Any,
) -> Config:
    """A Config that runs on `executor` and records into the SQLite database at `db_path`
    (the hub on localhost, resources sampled every `resource_interval` seconds); `options`
    are Config's others (retries, strategy...)."""
    hub = MonitoringHub(
        hub_address="127.0.0.1",
        logging_endpoint=f"sqlite:///{db_path}",
        resource_monitoring_interval=resource_interval,
        workflow_name=workflow_name,
    )
    return Config(executors=[executor], run_dir=run_dir, monitoring=hub, **options)
