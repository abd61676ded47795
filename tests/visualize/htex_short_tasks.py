"""Many short tasks on a HighThroughputExecutor with two workers, and a few 0.2 s sleeps.

Run as a script (``python htex_short_tasks.py DB RUN_DIR``) by the worker-clock tests, in its
own process. No-op tasks come back to the kernel in batches, so the kernel's launched ->
returned intervals of hundreds of them overlap; on the workers' clocks at most two run at once.
It also runs a bash app with a relative stdout path and one with AUTO_LOGNAME, from whatever
directory it is started in (the tests start it in a scratch directory).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import taskscope
from taskscope import AUTO_LOGNAME, bash_app, python_app
from taskscope.executors import HighThroughputExecutor

sys.path.append(str(Path(__file__).resolve().parents[1]))  # tests/: workflows.py
from workflows import monitored_config

NOOPS = 1500
SLEEPS = 4
SLEEP_S = 0.2


@python_app
def noop(i: int) -> int:
    return i


@python_app
def sleepy(seconds: float) -> float:
    import time

    time.sleep(seconds)
    return seconds


@bash_app
def say(word: str, stdout=None, stderr=None) -> str:
    return f"echo said-{word}; echo complained-{word} 1>&2"


def main(db_path: str, run_dir: str) -> None:
    config = monitored_config(
        db_path,
        run_dir,
        HighThroughputExecutor(label="htex", max_workers_per_node=2),
        workflow_name="htex-short",
        resource_interval=1.0,
        strategy="none",
    )
    os.makedirs("outputs", exist_ok=True)
    with taskscope.load(config):
        futures = [noop(i) for i in range(NOOPS)]
        futures += [sleepy(SLEEP_S) for _ in range(SLEEPS)]
        futures.append(say("relative", stdout="outputs/say.out", stderr="outputs/say.err"))
        futures.append(say("auto", stdout=AUTO_LOGNAME, stderr=AUTO_LOGNAME))
        for future in futures:
            future.result()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
