"""A small monitored workflow on a HighThroughputExecutor with two workers, for the exports.

Run as a script (``python htex_workflow.py DB RUN_DIR``) by the `htex_db` fixture, in its own
process: a fan-out of short sleeps, a layer that depends on them, a task that fails once and
succeeds on its retry, and a task that fails for good.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import taskscope
from taskscope import python_app
from taskscope.executors import HighThroughputExecutor

sys.path.append(str(Path(__file__).resolve().parents[1]))  # tests/: workflows.py
from workflows import monitored_config

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
    config = monitored_config(
        db_path,
        run_dir,
        HighThroughputExecutor(label="htex", max_workers_per_node=2),
        workflow_name="exports-htex",
        resource_interval=0.05,
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
