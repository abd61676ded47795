"""A monitored workflow whose apps ask for more than they use, by known amounts.

Run as a script (``python request_workflow.py DB RUN_DIR``) by the fixture in
``test_analysis_requests.py``, in its own process (the DataFlowKernel's state stays out of the
test session), on a ThreadPoolExecutor: each try's CPU is its own thread's.

* ``simulate`` x6: asks for 4 cores, 8000 MB and 10 minutes; keeps one core busy for 0.2 s
  and holds 40 MB. One more ``simulate`` asks for 8 cores (another request: left out).
* ``lean`` x6: asks for 2 cores and ``walltime=30``; sleeps 0.2 s (no CPU to speak of).
* ``fitted`` x6: asks for 1 core (and a different ``priority`` each: not a resource, so one
  request) and keeps it busy for 0.2 s: nothing to advise.
* ``plain`` x3: asks for nothing.
"""

from __future__ import annotations

import sys
from pathlib import Path

import taskscope
from taskscope import python_app
from taskscope.executors import ThreadPoolExecutor

sys.path.append(str(Path(__file__).resolve().parents[2]))  # tests/: workflows.py
from workflows import monitored_config

TRIES = 6
BUSY_S = 0.2
HELD_BYTES = 40 * 2**20
SIMULATE_SPEC = {"cores": 4, "memory": 8000, "running_time_min": 10}
OTHER_SIMULATE_SPEC = {"cores": 8, "memory": 8000, "running_time_min": 10}
LEAN_SPEC = {"cores": 2}
LEAN_WALLTIME = 30
FITTED_SPEC = {"cores": 1}


def _busy(seconds: float) -> None:
    import time

    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


@python_app
def simulate(index: int, parsl_resource_specification=None) -> int:
    held = bytearray(HELD_BYTES)  # zero-filled pages are resident once touched
    for offset in range(0, len(held), 4096):
        held[offset] = 1
    _busy(BUSY_S)
    return index + len(held) // HELD_BYTES


@python_app
def lean(index: int, parsl_resource_specification=None, walltime=None) -> int:
    import time

    time.sleep(BUSY_S)
    return index


@python_app
def fitted(index: int, parsl_resource_specification=None) -> int:
    _busy(BUSY_S)
    return index


@python_app
def plain(index: int) -> int:
    return index


def main(db_path: str, run_dir: str) -> None:
    config = monitored_config(
        db_path,
        run_dir,
        ThreadPoolExecutor(label="threads", max_threads=2),
        workflow_name="requests",
        resource_interval=0.1,
    )
    with taskscope.load(config):
        futures = [simulate(i, parsl_resource_specification=SIMULATE_SPEC) for i in range(TRIES)]
        futures.append(simulate(99, parsl_resource_specification=OTHER_SIMULATE_SPEC))
        futures += [
            lean(i, parsl_resource_specification=LEAN_SPEC, walltime=LEAN_WALLTIME)
            for i in range(TRIES)
        ]
        futures += [
            fitted(i, parsl_resource_specification={**FITTED_SPEC, "priority": i})
            for i in range(TRIES)
        ]
        futures += [plain(i) for i in range(3)]
        for future in futures:
            future.result()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
