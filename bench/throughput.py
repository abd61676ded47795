"""Throughput of no-op tasks on HighThroughputExecutor: prints one JSON line.

    python bench/throughput.py --tasks 10000 --workers 2 [--repeat 3] [--monitoring]

Each repeat submits N no-op python_app calls and waits for all results; the time runs from
the first submit to the last result, with workers already started (one warm-up task). The
figure is saved to bench/results/throughput.json as well.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import taskscope
from taskscope import python_app
from taskscope.config import Config
from taskscope.executors import HighThroughputExecutor


@python_app
def noop():
    return None


def one_round(n: int) -> float:
    started = time.perf_counter()
    futures = [noop() for _ in range(n)]
    for f in futures:
        f.result()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=10000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--monitoring",
        action="store_true",
        help="record to a throwaway monitoring database as well",
    )
    parser.add_argument(
        "--out", default=os.path.join(os.path.dirname(__file__), "results", "throughput.json")
    )
    args = parser.parse_args()
    if args.tasks < 1 or args.workers < 1 or args.repeat < 1:
        parser.error("--tasks, --workers and --repeat must be >= 1")

    with tempfile.TemporaryDirectory() as scratch:
        hub = None
        if args.monitoring:
            from taskscope.monitoring import MonitoringHub

            hub = MonitoringHub(
                logging_endpoint=f"sqlite:///{scratch}/monitoring.db",
                resource_monitoring_interval=0,
            )
        config = Config(
            executors=[HighThroughputExecutor(label="htex", max_workers_per_node=args.workers)],
            run_dir=os.path.join(scratch, "runinfo"),
            monitoring=hub,
        )
        with taskscope.load(config):
            noop().result()  # workers up, function shipped
            seconds = [one_round(args.tasks) for _ in range(args.repeat)]

    rates = [args.tasks / s for s in seconds]
    result = {
        "benchmark": "htex_noop_throughput",
        "tasks": args.tasks,
        "workers": args.workers,
        "monitoring": args.monitoring,
        "repeats": args.repeat,
        "tasks_per_second": round(statistics.median(rates), 1),
        "tasks_per_second_best": round(max(rates), 1),
        "seconds_median": round(statistics.median(seconds), 3),
        "cpu_count": os.cpu_count(),
        "load_average_1m": round(os.getloadavg()[0], 2),
        "python": platform.python_version(),
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    line = json.dumps(result)
    print(line)
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        suffix = "_monitoring" if args.monitoring else ""
        path = args.out.replace(".json", f"{suffix}.json") if suffix else args.out
        with open(path, "w") as f:
            f.write(line + "\n")


if __name__ == "__main__":
    main()
