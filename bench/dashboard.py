"""Time every dashboard page's server response on a synthetic 100,000-task database.

Builds (once, cached under the temp dir) a taskscope database with one 100,000-task run
(~190,000 tries, ~950,000 status rows, ~380,000 resource samples) plus a few small runs, then
requests every page through Starlette's TestClient: cold (a fresh app, so no cached result) and
warm (same app again). Prints one JSON line and writes bench/results/dashboard.json.

    .venv/bin/python bench/dashboard.py [--tasks 100000] [--rebuild]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

from starlette.testclient import TestClient

from taskscope.store.synthetic import SyntheticRun, create_database
from taskscope.visualize.app import create_app

TARGET_MS = 500.0
BIG_RUN = "bench-big"


def build(path: Path, tasks: int) -> None:
    runs = [SyntheticRun(BIG_RUN, tasks=tasks, status="completed", retry_fraction=0.9,
                         fail_fraction=0.01, samples_per_try=2, workers=64, hosts=4,
                         task_seconds=3.0, workflow_name="bench")]
    runs += [SyntheticRun(f"bench-small-{i}", tasks=500, workflow_name="bench", seed=i + 10)
             for i in range(20)]
    create_database(path, runs)


def counts(path: Path) -> dict[str, int]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return {t: conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
                for t in ("workflow", "task", "try", "status", "resource")}
    finally:
        conn.close()


def pages(tasks: int) -> dict[str, str]:
    base = f"/workflow/{BIG_RUN}"
    middle = tasks // 2 - (tasks // 2) % 10 + 9  # a summarize task, with dependencies
    return {
        "workflows": "/",
        "workflows_sorted_by_runtime": "/?sort=duration&order=desc",
        "summary": f"{base}/",
        "summary_json": f"{base}/?format=json",
        "dag_auto_apps": f"{base}/dag",
        "dag_by_state_apps": f"{base}/dag?colour=state",
        "dag_tasks_2000": f"{base}/dag?view=tasks",
        "dag_one_app_2000": f"{base}/dag?view=tasks&app=summarize",
        "resources": f"{base}/resources",
        "app_page_1": f"{base}/app/transform",
        "app_page_last": f"{base}/app/transform?page=600",
        "app_failed_filter": f"{base}/app/transform?state=failed",
        "task": f"{base}/task/{middle}",
        "task_not_found": f"{base}/task/{tasks + 5}",
    }


def time_page(client: TestClient, path: str) -> tuple[float, int]:
    start = time.perf_counter()
    response = client.get(path)
    return (time.perf_counter() - start) * 1000.0, response.status_code


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--rebuild", action="store_true")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    path = Path(tempfile.gettempdir()) / f"taskscope-bench-dashboard-{args.tasks}.db"
    build_s = None
    if args.rebuild or not path.exists():
        for suffix in ("", "-wal", "-shm"):
            Path(str(path) + suffix).unlink(missing_ok=True)
        start = time.perf_counter()
        build(path, args.tasks)
        build_s = round(time.perf_counter() - start, 1)
    results = {}
    for name, url in pages(args.tasks).items():
        cold, warm, statuses = [], [], set()
        for _ in range(args.repeat):
            client = TestClient(create_app(path))  # fresh app: nothing cached
            ms, status = time_page(client, url)
            cold.append(ms)
            statuses.add(status)
            ms, status = time_page(client, url)
            warm.append(ms)
        results[name] = {"url": url, "status": sorted(statuses),
                         "cold_ms": round(statistics.median(cold), 1),
                         "warm_ms": round(statistics.median(warm), 1)}
    slowest = max(results.values(), key=lambda r: r["cold_ms"])
    report = {
        "bench": "dashboard",
        "machine": f"{platform.machine()} {os.cpu_count()} cpus, shared with other work",
        "database_rows": counts(path),
        "database_mb": round(path.stat().st_size / 2**20, 1),
        "build_s": build_s,
        "target_ms": TARGET_MS,
        "all_under_target_cold": all(r["cold_ms"] < TARGET_MS for r in results.values()),
        "slowest_cold": slowest,
        "pages": results,
    }
    line = json.dumps(report)
    print(line)
    out = Path(__file__).resolve().parent / "results" / "dashboard.json"
    out.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
