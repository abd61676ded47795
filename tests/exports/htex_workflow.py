"""A small monitored workflow on a HighThroughputExecutor with two workers, for the exports.

Run as a script (``python htex_workflow.py DB RUN_DIR``) by the `htex_db` fixture, in its own
process: a fan-out of short sleeps, a layer that depends on them, a task that fails once and
succeeds on its retry, and a task that fails for good.
"""

from __future__ import annotations

import os
import sys

import taskscope
from taskscope import python_app
from taskscope.config import Config
from taskscope.executors import HighThroughputExecutor
from taskscope.monitoring import MonitoringHub

FAN_OUT = 12


@python_app
def nap(i: int, seconds: float = 0.05) -> int:
    import time

    time.sleep(seconds)
    return i


@python_app
def total(*parts: int) -> int:
    return sum(parts)


@python_app
def flaky(marker: str) -> str:
    import pathlib

    path = pathlib.Path(marker)
    first = not path.exists()
    path.touch()
    if first:
        raise RuntimeError("transient failure (first try)")
    return "ok"


@python_app
def broken() -> None:
    raise ValueError("always broken")


def main(db_path: str, run_dir: str) -> None:
    hub = MonitoringHub(
        hub_address="127.0.0.1",
        logging_endpoint=f"sqlite:///{db_path}",
        resource_monitoring_interval=0.05,
        workflow_name="exports-htex",
    )
    config = Config(
        executors=[HighThroughputExecutor(label="htex", max_workers_per_node=2)],
        run_dir=run_dir,
        monitoring=hub,
        retries=1,
        strategy="none",
    )
    with taskscope.load(config) as dfk:
        naps = [nap(i) for i in range(FAN_OUT)]
        sums = [total(naps[i], naps[i + 1]) for i in range(0, FAN_OUT, 2)]
        final = total(*sums)
        retried = flaky(os.path.join(dfk.run_dir, "flaky.marker"))
        doomed = broken()
        final.result()
        retried.result()
        doomed.exception()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
