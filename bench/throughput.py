"""Throughput of no-op tasks on HighThroughputExecutor, and mixed durations: JSON lines.

    python bench/throughput.py --tasks 10000 --workers 2 [--repeat 3] [--monitoring]
                               [--workload all|noop|mixed|long-after-tiny]

``noop``: each repeat submits N no-op python_app calls and waits for all results; the time
runs from the first submit to the last result, with workers already started (one warm-up
task). Saved to bench/results/throughput.json.

``long-after-tiny`` (the idle-worker case): in a fresh ``load()``, 2,000 no-ops, then six
CPU-bound 1 s tasks; timed from the first long submit to the last long result. ``mixed``: a
few CPU-bound 1 s tasks among 2,000 CPU-bound 0.5 ms ones, submitted together in a fixed
shuffled order. Each prints its ideal time (total work / workers, or the longest task if
longer) beside the measured one, and how many workers ran long tasks. Saved to
bench/results/throughput_mixed.json.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import platform
import random
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


@python_app
def spin(seconds):
    """CPU-bound for ``seconds`` of wall time (so the ideal does not depend on the load)."""
    import os
    import time

    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass
    return os.getpid()


LONG_SECONDS = 1.0
SHORT_SECONDS = 0.0005


def one_round(n: int) -> float:
    started = time.perf_counter()
    futures = [noop() for _ in range(n)]
    for f in futures:
        f.result()
    return time.perf_counter() - started


def ideal_seconds(durations: list[float], workers: int) -> float:
    return max(sum(durations) / workers, *durations)


def timed_spins(durations: list[float]) -> tuple[float, collections.Counter]:
    started = time.perf_counter()
    futures = [(d, spin(d)) for d in durations]
    long_on = collections.Counter(f.result() for d, f in futures if d >= LONG_SECONDS)
    return time.perf_counter() - started, long_on


def mixed_round(workload: str, workers: int, scratch: str, round_no: int) -> dict:
    if workload == "long-after-tiny":
        durations = [LONG_SECONDS] * 6
    else:
        durations = [LONG_SECONDS] * 4 + [SHORT_SECONDS] * 2000
        random.Random(round_no).shuffle(durations)
    config = Config(
        executors=[HighThroughputExecutor(label="htex", max_workers_per_node=workers)],
        run_dir=os.path.join(scratch, f"runinfo-{workload}-{round_no}"),
    )
    with taskscope.load(config) as dfk:
        # Started at once, as a workflow does: a worker may still be starting.
        for f in [noop() for _ in range(2000 if workload == "long-after-tiny" else 1)]:
            f.result()
        seconds, long_on = timed_spins(durations)
        given_back = getattr(dfk.executors["htex"], "tasks_given_back", None)
    return {
        "seconds": seconds,
        "given_back": given_back,
        "workers_running_long_tasks": len(long_on),
        "ideal": ideal_seconds(durations, workers),
    }


def run_mixed(workload: str, args: argparse.Namespace) -> dict:
    with tempfile.TemporaryDirectory() as scratch:
        rounds = [mixed_round(workload, args.workers, scratch, i) for i in range(args.repeat)]
    seconds = [r["seconds"] for r in rounds]
    ideal = rounds[0]["ideal"]
    return {
        "benchmark": f"htex_{workload.replace('-', '_')}",
        "workload": (
            "2,000 no-ops, then six 1 s CPU tasks"
            if workload == "long-after-tiny"
            else "4 CPU tasks of 1 s among 2,000 of 0.5 ms, shuffled"
        ),
        "workers": args.workers,
        "repeats": args.repeat,
        "ideal_seconds": round(ideal, 3),
        "seconds_median": round(statistics.median(seconds), 3),
        "seconds_all": [round(x, 3) for x in seconds],
        "median_over_ideal": round(statistics.median(seconds) / ideal, 3),
        "workers_running_long_tasks": [r["workers_running_long_tasks"] for r in rounds],
        "tasks_given_back": [r["given_back"] for r in rounds],
        "cpu_count": os.cpu_count(),
        "load_average_1m": round(os.getloadavg()[0], 2),
        "python": platform.python_version(),
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }


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
        "--workload", choices=["all", "noop", "mixed", "long-after-tiny"], default="all"
    )
    parser.add_argument(
        "--out", default=os.path.join(os.path.dirname(__file__), "results", "throughput.json")
    )
    args = parser.parse_args()
    if args.tasks < 1 or args.workers < 1 or args.repeat < 1:
        parser.error("--tasks, --workers and --repeat must be >= 1")
    if args.workload in ("all", "noop"):
        run_noop(args)
    mixed_lines = [
        json.dumps(run_mixed(workload, args))
        for workload in ("long-after-tiny", "mixed")
        if args.workload in ("all", workload)
    ]
    for line in mixed_lines:
        print(line)
    if args.out and mixed_lines:
        path = args.out.replace(".json", "_mixed.json")
        with open(path, "w") as f:
            f.write("\n".join(mixed_lines) + "\n")


def run_noop(args: argparse.Namespace) -> None:
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
