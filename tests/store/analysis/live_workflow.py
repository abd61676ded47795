"""A monitored workflow that runs for several seconds, for forecasting a live run.

``python live_workflow.py DB RUN_DIR``: 24 tasks of 0.4 s, then 6 that each depend on four of
them, on two HighThroughputExecutor workers (about 6 s in all).
"""

from __future__ import annotations

import sys
from pathlib import Path

import taskscope
from taskscope import python_app
from taskscope.executors import HighThroughputExecutor

sys.path.append(str(Path(__file__).resolve().parents[2]))  # tests/: workflows.py
from workflows import monitored_config


@python_app
def work(index: int, seconds: float) -> int:
    import time

    time.sleep(seconds)
    return index


@python_app
def gather(*parts: int) -> int:
    import time

    time.sleep(0.4)
    return sum(parts)


def main(db_path: str, run_dir: str) -> None:
    config = monitored_config(
        db_path,
        run_dir,
        HighThroughputExecutor(label="htex", max_workers_per_node=2),
        workflow_name="live",
        resource_interval=0.2,
    )
    with taskscope.load(config):
        parts = [work(i, 0.4) for i in range(24)]
        totals = [gather(*parts[i : i + 4]) for i in range(0, 24, 4)]
        for total in totals:
            total.result()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
