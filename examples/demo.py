"""A small workflow that shows what taskscope records: run it, then open the dashboard.

    cd examples && python demo.py        (or: make demo)

It runs a diamond DAG, a fan-out/fan-in, a bash app, a task that fails once and is retried,
a task that always fails (its dependent ends in dep_fail), a memoized call and a join app,
on a HighThroughputExecutor with two workers, monitored into runinfo/monitoring.db.
"""

from __future__ import annotations

import collections
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import taskscope
from taskscope import bash_app, join_app, python_app
from taskscope.config import Config
from taskscope.executors import HighThroughputExecutor

DB_PATH = os.path.join("runinfo", "monitoring.db")


@python_app
def generate(seed: int) -> int:
    return seed * 7 % 11


@python_app
def combine(a: int, b: int) -> int:
    return a + b


@python_app
def crunch(n: int) -> int:
    """Burns some CPU so the resource charts have something to show."""
    import time

    end, total = time.time() + 0.4, 0
    while time.time() < end:
        total += sum(i * i for i in range(2000))
    return n


@python_app
def total(inputs=()) -> int:
    return sum(inputs)


@python_app
def flaky(marker: str) -> str:
    """Fails on its first try (the marker file is absent), succeeds when retried."""
    import os

    if not os.path.exists(marker):
        open(marker, "w").close()
        raise RuntimeError("transient failure (first try)")
    return "ok on retry"


@python_app
def validate(value: int) -> int:
    raise ValueError(f"value {value} does not validate")


@python_app
def report(value: int) -> str:
    return f"validated {value}"


@python_app(cache=True)
def expensive(x: int) -> int:
    import time

    time.sleep(0.3)
    return x**2


@bash_app
def word_count(path: str, stdout=None, stderr=None) -> str:
    return f"sleep 0.5; wc -w {path}"


@join_app
def refine(n: int):
    return [generate(i) for i in range(n)]


def main() -> None:
    hub = None
    try:
        from taskscope.monitoring import MonitoringHub

        hub = MonitoringHub(
            hub_address="127.0.0.1",
            logging_endpoint=f"sqlite:///{DB_PATH}",
            resource_monitoring_interval=0.25,
            workflow_name="demo",
        )
    except ImportError:
        print("monitoring is not available; running without it")

    config = Config(
        executors=[HighThroughputExecutor(label="htex", max_workers_per_node=2)],
        retries=1,
        run_dir="runinfo",
        monitoring=hub,
        garbage_collect=False,
    )
    started = time.time()
    with taskscope.load(config) as dfk:
        top = generate(3)
        diamond = combine(combine(top, 1), combine(top, 2))
        fan = [crunch(i) for i in range(6)]
        fan_in = total(inputs=fan)
        retried = flaky(os.path.join(dfk.run_dir, "flaky.marker"))
        doomed = report(validate(13))
        first = expensive(12)
        first.result()
        memo_hit = expensive(12)
        with open(os.path.join(dfk.run_dir, "words.txt"), "w") as f:
            f.write("taskscope records every task of this workflow\n")
        counted = word_count(
            os.path.join(dfk.run_dir, "words.txt"),
            stdout=os.path.join(dfk.run_dir, "wc.out"),
            stderr=os.path.join(dfk.run_dir, "wc.err"),
        )
        joined = refine(4)
        taskscope.wait_for_current_tasks()

        print(
            f"diamond -> {diamond.result()}, fan-in of {len(fan)} -> {fan_in.result()}, "
            f"join -> {joined.result()}"
        )
        print(f"retried task: {retried.result()} after {retried.task_record.fail_count} failed try")
        print(f"memoized call: {memo_hit.result()} ({memo_hit.task_record.status.name})")
        with open(os.path.join(dfk.run_dir, "wc.out")) as wc:
            print(f"bash app exit code {counted.result()}, output: {wc.read().strip()}")
        print(f"failing chain: {doomed.exception()}")

    states = collections.Counter(record.status.name for record in dfk.tasks.values())
    print(
        f"{len(dfk.tasks)} tasks in {time.time() - started:.1f} s, by final state: "
        + ", ".join(f"{name} {count}" for name, count in sorted(states.items()))
    )
    if hub is not None:
        print(f"monitoring database: {os.path.abspath(DB_PATH)}")
        print(f"dashboard: taskscope-visualize {os.path.abspath(DB_PATH)}")


if __name__ == "__main__":
    main()
