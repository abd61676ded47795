"""Helpers shared by the store tests."""

import os
import time

from fixture_paths import PARSL_FIXTURE_DB, PARSL_FIXTURE_SQL  # noqa: F401 (re-exported)

from taskscope.monitoring.messages import WorkflowStart


def workflow_start(run_id: str, t: float | None = None) -> WorkflowStart:
    return WorkflowStart(
        run_id=run_id,
        workflow_name="wf",
        workflow_version="1",
        time_began=time.time() if t is None else t,
        host="host",
        user="user",
        rundir="/tmp/run",
        python_version="3.11.7",
        taskscope_version="0.1.0",
        executors=["htex"],
        pid=os.getpid(),
        heartbeat_interval=2.0,
    )
