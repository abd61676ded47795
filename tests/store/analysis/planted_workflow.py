"""A monitored workflow whose failures, critical chain and stragglers are known in advance.

Run as a script (``python planted_workflow.py DB RUN_DIR VARIANT``) by the fixtures in
``conftest.py``, in its own process so the DataFlowKernel's global state never touches the
test session. ``VARIANT`` is ``first`` or ``second``: the second run of the same workflow
drops one failure group (gone), keeps the others (recurring) and adds one (new).

What is planted (the tests assert exactly this, see ``PLANTED`` in conftest.py):

* ``lookup`` x5: ``KeyError('sample-<i>')`` (a different key each time): one group.
* ``load_table`` x4: ``ValueError`` naming a different path, size and hex id each time: one group.
* ``score`` x3: depend on failing ``lookup`` tasks: dependency failures naming the KeyError group.
* ``archive`` x3 (bash): ``exit 3``; ``compress`` x1 (bash): ``exit 7`` (first run only).
* ``crash`` x1: kills its own worker process (SIGKILL), on both tries: worker lost.
* ``slow_io`` x1: exceeds its ``walltime``: walltime.
* ``flaky`` x2: fails its first try only: retried-then-succeeded.
* ``unpicklable`` x2: returns a lock, which cannot be sent back: serialization.
* ``divide`` x2 (second run only): ZeroDivisionError: a new group.
* ``steady`` x14: 12 run 0.1 s, 2 (the stragglers) run 1.0 s.
* ``stage`` x4: a chain, each step 1.5 s, started first: the critical path.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import taskscope
from taskscope import bash_app, python_app
from taskscope.executors import HighThroughputExecutor

sys.path.append(str(Path(__file__).resolve().parents[2]))  # tests/: workflows.py
from workflows import monitored_config

CHAIN_STEPS = 4
CHAIN_STEP_S = 1.5
STEADY_TASKS = 12
STEADY_S = 0.1
STRAGGLER_S = 1.0


@python_app
def stage(previous: int, seconds: float) -> int:
    import time

    time.sleep(seconds)
    return previous + 1


@python_app
def steady(index: int, seconds: float) -> int:
    import time

    time.sleep(seconds)
    return index


@python_app
def lookup(index: int) -> int:
    table = {"alpha": 1}
    return table[f"sample-{index}"]


@python_app
def load_table(index: int) -> int:
    path = f"/scratch/run{index * 17}/input_{index}.csv"
    raise ValueError(f"cannot parse {path}: {1000 + index} bytes, checksum 0x{index * 48879:08x}")


@python_app
def score(value: int) -> int:
    return value * 2


@bash_app
def archive(index: int, stdout=None, stderr=None) -> str:
    return f"echo archiving part {index}; echo 'tar: part{index}.tar: Cannot open' 1>&2; exit 3"


@bash_app
def compress(index: int, stdout=None, stderr=None) -> str:
    return f"echo 'gzip: part{index}: No space left on device' 1>&2; exit 7"


@python_app
def crash(index: int) -> int:
    import os
    import signal

    os.kill(os.getpid(), signal.SIGKILL)
    return index


@python_app
def slow_io(seconds: float, walltime: float = 0.5) -> float:
    import time

    # Short sleeps: the walltime interrupt is delivered between bytecodes, not inside a sleep.
    for _ in range(int(seconds / 0.05)):
        time.sleep(0.05)
    return seconds


@python_app
def flaky(marker: str) -> str:
    import pathlib

    path = pathlib.Path(marker)
    first_try = not path.exists()
    path.touch()
    if first_try:
        raise RuntimeError(f"transient failure talking to {marker}")
    return "ok on retry"


@python_app
def unpicklable(index: int) -> object:
    import threading

    return threading.Lock()


@python_app
def divide(a: int, b: int) -> float:
    return a / b


def main(db_path: str, run_dir: str, variant: str) -> None:
    config = monitored_config(
        db_path,
        run_dir,
        HighThroughputExecutor(label="htex", max_workers_per_node=4),
        workflow_name="planted",
        resource_interval=0.2,
        retries=1,
    )
    with taskscope.load(config) as dfk:
        futures = []
        value = stage(0, CHAIN_STEP_S)
        for _ in range(CHAIN_STEPS - 1):
            value = stage(value, CHAIN_STEP_S)
        futures.append(value)
        futures += [steady(i, STEADY_S) for i in range(STEADY_TASKS)]
        futures += [steady(100 + i, STRAGGLER_S) for i in range(2)]
        lookups = [lookup(i) for i in range(5)]
        futures += lookups
        futures += [score(lookups[i]) for i in range(3)]
        futures += [load_table(i) for i in range(4)]
        out = dfk.run_dir
        futures += [
            archive(
                i,
                stdout=os.path.join(out, f"archive{i}.out"),
                stderr=os.path.join(out, f"archive{i}.err"),
            )
            for i in range(3)
        ]
        if variant == "first":
            futures.append(compress(0, stderr=os.path.join(out, "compress0.err")))
        else:
            futures += [divide(i, 0) for i in range(2)]
        futures.append(crash(0))
        futures.append(slow_io(5.0, walltime=0.5))
        futures += [flaky(os.path.join(out, f"flaky{i}.marker")) for i in range(2)]
        futures += [unpicklable(i) for i in range(2)]
        taskscope.wait_for_current_tasks()
        for future in futures:
            future.exception()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3])
