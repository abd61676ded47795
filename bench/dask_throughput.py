"""Dask executor throughput with and without monitoring, side by side on the same cluster.

The monitoring benchmark's workload (bench/monitoring.py, section noop): 2,000 no-op tasks,
``resource_monitoring_interval=1``, 2 workers — here 2 Dask worker processes of one local
cluster that both variants share. Each variant runs ``--rounds`` times, alternating, and the
best round counts (the machine is shared; the best round is the least disturbed one). A second
section runs 200 tasks of 0.1 s (ideal: 20 tasks/s on 2 workers).

Prints one JSON line per section and saves them to bench/results/dask.json.

    .venv/bin/python bench/dask_throughput.py [--tasks 2000] [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sqlite3
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results" / "dask.json"


def noop():
    return 0


def napper(seconds):
    import time as _t

    _t.sleep(seconds)
    return seconds


def run_once(cluster, kind: str, n: int, monitored: bool, workdir: Path) -> dict:
    import taskscope
    from taskscope.config import Config
    from taskscope.executors.dask import DaskExecutor
    from taskscope.monitoring import MonitoringHub

    hub = None
    if monitored:
        hub = MonitoringHub(
            resource_monitoring_interval=1, logging_endpoint=f"sqlite:///{workdir}/monitoring.db"
        )
    config = Config(
        executors=[DaskExecutor(label="dask", cluster=cluster)],
        monitoring=hub,
        run_dir=str(workdir / "runinfo"),
        strategy="none",
        app_cache=False,
    )
    dfk = taskscope.load(config)
    app = taskscope.python_app(noop if kind == "noop" else napper, executors=["dask"])
    [app().result() if kind == "noop" else app(0).result() for _ in range(4)]  # warm up
    start = time.perf_counter()
    futures = [app() if kind == "noop" else app(0.1) for _ in range(n)]
    for f in futures:
        f.result()
    last_result = time.perf_counter()
    dfk.cleanup()
    cleaned = time.perf_counter()
    taskscope.clear()
    out = {
        "tasks_per_s": round(n / (last_result - start), 1),
        "cleanup_s": round(cleaned - last_result, 3),
    }
    if monitored:
        conn = sqlite3.connect(workdir / "monitoring.db")
        try:
            out["rows_try_with_hostname"] = conn.execute(
                "SELECT count(*) FROM try WHERE hostname IS NOT NULL"
            ).fetchone()[0]
            out["rows_resource"] = conn.execute("SELECT count(*) FROM resource").fetchone()[0]
            out["rows_node"] = conn.execute("SELECT count(*) FROM node").fetchone()[0]
        finally:
            conn.close()
    return out


def bench(cluster, kind: str, n: int, rounds: int) -> dict:
    best: dict[str, dict] = {}
    all_rates: dict[str, list[float]] = {"unmonitored": [], "monitored": []}
    for _ in range(rounds):
        for monitored in (False, True):
            name = "monitored" if monitored else "unmonitored"
            with tempfile.TemporaryDirectory() as d:
                result = run_once(cluster, kind, n, monitored, Path(d))
            all_rates[name].append(result["tasks_per_s"])
            if name not in best or result["tasks_per_s"] > best[name]["tasks_per_s"]:
                best[name] = result
    line = {"section": f"dask_{kind}", "tasks": n, "workers": 2, "rounds": rounds, **best}
    line["rounds_tasks_per_s"] = all_rates
    line["monitored_over_unmonitored"] = round(
        best["monitored"]["tasks_per_s"] / best["unmonitored"]["tasks_per_s"], 3
    )
    if kind == "sleep":
        line["monitored_fraction_of_ideal_20_per_s"] = round(
            best["monitored"]["tasks_per_s"] / 20.0, 3
        )
    line["machine"] = {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "load_avg_1m": round(os.getloadavg()[0], 2),
    }
    return line


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument("--sleep-tasks", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()

    from taskscope.cluster.dask_local import subprocess_cluster

    lines = []
    with tempfile.TemporaryDirectory() as logs:
        cluster = subprocess_cluster(2, 1, logs)
        try:
            lines.append(bench(cluster, "noop", args.tasks, args.rounds))
            print(json.dumps(lines[-1]), flush=True)
            lines.append(bench(cluster, "sleep", args.sleep_tasks, 1))
            print(json.dumps(lines[-1]), flush=True)
        finally:
            cluster.close()
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text("".join(json.dumps(line) + "\n" for line in lines))


if __name__ == "__main__":
    main()
