"""A small monitored workflow that writes a real taskscope monitoring database.

Run as a script (``python real_workflow.py DB RUN_DIR``) by the `real_db` fixture, in its own
process so that the DataFlowKernel's and the hub's global state never touch the test session.
It covers what the dashboard must show: a diamond, a retried task, a failure with a dependent
in dep_fail, a bash app with stdout/stderr files, a memoized call and a join app.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import taskscope
from taskscope import bash_app, join_app, python_app
from taskscope.executors import ThreadPoolExecutor

sys.path.append(str(Path(__file__).resolve().parents[1]))  # tests/: workflows.py
from workflows import monitored_config


@python_app
def generate(seed: int) -> int:
    return seed * 7 % 11


@python_app
def combine(a: int, b: int) -> int:
    return a + b


@python_app
def flaky(marker: str) -> str:
    """Fails while its marker file is missing (so only its first try fails)."""
    import pathlib

    path = pathlib.Path(marker)
    first_try = not path.exists()
    path.touch()
    if first_try:
        raise RuntimeError("transient failure (first try)")
    return "ok on retry"


@python_app
def ratio(part: int, whole: int) -> float:
    return part / whole  # whole=0: ZeroDivisionError, a failure for good


@python_app
def percent(fraction: float) -> str:
    return f"{fraction:.0%}"


@python_app(cache=True)
def square(x: int) -> int:
    return x * x


@bash_app
def shout(word: str, stdout=None, stderr=None) -> str:
    return f"echo line one; echo {word}; echo to-stderr 1>&2"


@join_app
def refine(n: int):
    return [generate(i) for i in range(n)]


def main(db_path: str, run_dir: str) -> None:
    config = monitored_config(
        db_path,
        run_dir,
        ThreadPoolExecutor(label="threads", max_threads=4),
        workflow_name="real-sample",
        resource_interval=0.1,
        retries=1,
    )
    with taskscope.load(config) as dfk:
        top = generate(3)
        diamond = combine(combine(top, 1), combine(top, 2))
        retried = flaky(os.path.join(dfk.run_dir, "flaky.marker"))
        doomed = percent(ratio(1, 0))
        square(4).result()
        memo = square(4)
        said = shout(
            "hello-dashboard",
            stdout=os.path.join(dfk.run_dir, "shout.out"),
            stderr=os.path.join(dfk.run_dir, "shout.err"),
        )
        joined = refine(3)
        taskscope.wait_for_current_tasks()
        for future in (diamond, retried, memo, said, joined):
            future.result()
        doomed.exception()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
