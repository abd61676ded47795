"""Time every dashboard page's server response on a synthetic 100,000-task database.

Builds (once, cached under the temp dir) a taskscope database with one 100,000-task run
(~190,000 tries, ~950,000 status rows, ~380,000 resource samples) plus a few small runs, and a
copy of it reduced to Parsl's schema (no taskscope_* tables such as ``taskscope_task_state``,
none of taskscope's indexes), then requests every page through Starlette's TestClient: cold (a
fresh app, so nothing cached: the first view) and warm (same app again). Prints one JSON line
and writes bench/results/dashboard.json.

    .venv/bin/python bench/dashboard.py [--tasks 100000] [--rebuild] [--variant state|parsl_like]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

from starlette.testclient import TestClient

from taskscope.store.rollup_rebuild import add_missing_rollups, rebuild_rollups
from taskscope.store.schema import TASKSCOPE_TABLES
from taskscope.store.synthetic import SyntheticRun, create_database
from taskscope.visualize.app import create_app

TARGET_MS = 300.0  # every page and part, cold, at 10^6 tasks (issue 15)
BIG_RUN = "bench-big"


def build(path: Path, tasks: int) -> None:
    runs = [
        SyntheticRun(
            BIG_RUN,
            tasks=tasks,
            status="completed",
            retry_fraction=0.9,
            fail_fraction=0.01,
            samples_per_try=2,
            workers=64,
            hosts=4,
            task_seconds=3.0,
            workflow_name="bench",
        )
    ]
    runs += [
        SyntheticRun(f"bench-small-{i}", tasks=500, workflow_name="bench", seed=i + 10)
        for i in range(20)
    ]
    create_database(path, runs)


def add_rollups(path: Path) -> None:
    """Bring a cached database built before the writer kept its later rollups (per-run
    totals, per-minute flow and occupancy, dependents) up to what the writer now keeps."""
    conn = sqlite3.connect(path)
    try:
        for statement in TASKSCOPE_TABLES.split(";"):
            if statement.strip():
                conn.execute(statement)
        for (run_id,) in conn.execute("SELECT run_id FROM workflow").fetchall():
            if not conn.execute(
                "SELECT 1 FROM taskscope_app_total WHERE run_id = ? LIMIT 1", (run_id,)
            ).fetchone():
                has_tries = conn.execute(
                    "SELECT 1 FROM taskscope_try_run WHERE run_id = ? LIMIT 1", (run_id,)
                ).fetchone()
                (add_missing_rollups if has_tries else rebuild_rollups)(conn, run_id)
        conn.commit()
    finally:
        conn.close()


def parsl_like(source: Path, target: Path) -> None:
    """A copy of `source` reduced to what Parsl writes: its seven tables with their primary
    keys and its one index, no taskscope_* table (so no taskscope_task_state) and none of
    taskscope's extra indexes. Readers take every fallback path on it."""
    shutil.copy(source, target)
    conn = sqlite3.connect(target)
    try:
        for kind, name in conn.execute(
            "SELECT type, name FROM sqlite_master WHERE (type = 'table' AND name LIKE "
            "'taskscope%') OR (type = 'index' AND name LIKE 'ix_%' "
            "AND name != 'ix_task_task_hashsum')"
        ).fetchall():
            conn.execute(f"DROP {kind.upper()} IF EXISTS {name}")
        conn.commit()
        conn.execute("ANALYZE")
        conn.commit()
    finally:
        conn.close()


def counts(path: Path) -> dict[str, int]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return {
            t: conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
            for t in ("workflow", "task", "try", "status", "resource")
        }
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
        "summary_part_apps": f"{base}/?part=apps&format=json",
        "summary_part_durations": f"{base}/?part=durations&format=json",
        "summary_part_states": f"{base}/?part=states&format=json",
        "dag_auto_apps": f"{base}/dag",
        "dag_by_state_apps": f"{base}/dag?colour=state",
        "dag_tasks_2000": f"{base}/dag?view=tasks",
        "dag_one_app_2000": f"{base}/dag?view=tasks&app=summarize",
        "dag_around_task": f"{base}/dag?view=around&task={middle - 4}",
        "dag_around_task_deep": f"{base}/dag?view=around&task={middle - 4}&depth=20",
        "resources": f"{base}/resources",
        "resources_part_usage_workers": f"{base}/resources?part=usage_workers&format=json",
        "resources_part_usage_samples": f"{base}/resources?part=usage_samples&format=json",
        "resources_part_distributions": f"{base}/resources?part=distributions&format=json",
        "app_page_1": f"{base}/app/transform",
        "app_part_stats": f"{base}/app/transform?part=stats&format=json",
        "app_page_last": f"{base}/app/transform?page=600",
        "app_failed_filter": f"{base}/app/transform?state=failed",
        "summary_part_timeline": f"{base}/?part=timeline&format=json",
        "summary_part_timeline_window": f"{base}/?part=timeline&from=600&to=610&format=json",
        "stream": f"{base}/stream",
        "stream_window": f"{base}/stream?from=600&to=603",
        "task": f"{base}/task/{middle}",
        "task_not_found": f"{base}/task/{tasks + 5}",
    }


def time_page(client: TestClient, path: str) -> tuple[float, int]:
    start = time.perf_counter()
    response = client.get(path)
    return (time.perf_counter() - start) * 1000.0, response.status_code


def time_variant(path: Path, tasks: int, repeat: int) -> dict:
    results = {}
    for name, url in pages(tasks).items():
        cold, warm, statuses = [], [], set()
        for _ in range(repeat):
            client = TestClient(create_app(path))  # fresh app: nothing cached
            ms, status = time_page(client, url)
            cold.append(ms)
            statuses.add(status)
            ms, status = time_page(client, url)
            warm.append(ms)
        results[name] = {
            "url": url,
            "status": sorted(statuses),
            "cold_ms": round(statistics.median(cold), 1),
            "warm_ms": round(statistics.median(warm), 1),
        }
    slowest_name = max(results, key=lambda n: results[n]["cold_ms"])
    return {
        "all_under_target_cold": all(r["cold_ms"] < TARGET_MS for r in results.values()),
        "slowest_cold": {"page": slowest_name, **results[slowest_name]},
        "pages": results,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--rebuild", action="store_true")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--variant",
        choices=["state", "parsl_like"],
        action="append",
        help="time only this database variant (default: both)",
    )
    args = parser.parse_args()
    folder = Path(tempfile.gettempdir())
    paths = {
        "state": folder / f"taskscope-bench-dashboard-{args.tasks}-state.db",
        "parsl_like": folder / f"taskscope-bench-dashboard-{args.tasks}-parsl.db",
    }
    build_s = None
    if args.rebuild or not all(p.exists() for p in paths.values()):
        for path in paths.values():
            for suffix in ("", "-wal", "-shm"):
                Path(str(path) + suffix).unlink(missing_ok=True)
        start = time.perf_counter()
        build(paths["state"], args.tasks)
        parsl_like(paths["state"], paths["parsl_like"])
        build_s = round(time.perf_counter() - start, 1)
    add_rollups(paths["state"])
    variants = {}
    for variant in args.variant or ["state", "parsl_like"]:
        variants[variant] = time_variant(paths[variant], args.tasks, args.repeat)
    report = {
        "bench": "dashboard",
        "machine": f"{platform.machine()} {os.cpu_count()} cpus, shared with other work",
        "database_rows": counts(paths["state"]),
        "database_mb": round(paths["state"].stat().st_size / 2**20, 1),
        "build_s": build_s,
        "target_ms": TARGET_MS,
        "variants_note": "state: the database as taskscope's writer leaves it (with "
        "taskscope_task_state and taskscope's indexes); parsl_like: the same rows "
        "with only what Parsl writes (no taskscope_* tables, only Parsl's "
        "primary keys and index), so task states come from the status history",
        "variants": variants,
    }
    line = json.dumps(report)
    print(line)
    name = "dashboard.json" if args.tasks == 100_000 else f"dashboard-{args.tasks}.json"
    out = Path(__file__).resolve().parent / "results" / name
    out.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
