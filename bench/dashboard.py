"""Time every dashboard page, deferred part and API response on a synthetic database.

Builds (once, cached under the temp dir) a taskscope database with one big run (100,000 tasks
by default: ~190,000 tries, ~950,000 status rows, ~380,000 resource samples) plus a few small
runs, and on request a copy of it reduced to Parsl's schema (no taskscope_* tables such as
``taskscope_task_state``, none of taskscope's indexes), then requests every page through
Starlette's TestClient, each in a fresh server process: cold (its first request, nothing
cached in the process; the OS page cache is warm) and warm (the same request again, served
from the dashboard's cache). Wall and CPU milliseconds of each; an answer that says its
figures are being computed is asked again until they come (ready_ms). Prints one JSON line and
writes bench/results/dashboard.json (dashboard-N.json for other sizes).

    .venv/bin/python bench/dashboard.py [--tasks 100000] [--rebuild] [--variant state|parsl_like]
        [--repeat 3] [--page NAME ...]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from starlette.testclient import TestClient

from taskscope.store.database import add_later_columns
from taskscope.store.rollup_rebuild import (
    add_missing_rollups,
    add_task_durations,
    add_ten_minute_occupancy,
    rebuild_rollups,
)
from taskscope.store.schema import TASKSCOPE_TABLES
from taskscope.store.synthetic import SyntheticRun, create_database
from taskscope.visualize.app import create_app

TARGET_MS = 300.0  # every page and part, cold, at 10^6 tasks (issue 15)
PENDING = "is being computed"  # what an answer without its figures yet says
READY_TIMEOUT_S = 300.0
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
    totals, per-minute flow and occupancy, dependents, the ten-minute occupancy, the tasks'
    durations) up to what the writer now keeps."""
    conn = sqlite3.connect(path)
    try:
        add_later_columns(conn, {"taskscope_task_state"})
        for statement in TASKSCOPE_TABLES.split(";"):
            if statement.strip():
                conn.execute(statement)
        for (run_id,) in conn.execute("SELECT run_id FROM workflow").fetchall():
            if not conn.execute(
                "SELECT 1 FROM taskscope_task_state WHERE run_id = ? AND duration IS NOT NULL "
                "LIMIT 1",
                (run_id,),
            ).fetchone():
                add_task_durations(conn, run_id)  # the writer's since the duration column
            if not conn.execute(
                "SELECT 1 FROM taskscope_app_total WHERE run_id = ? LIMIT 1", (run_id,)
            ).fetchone():
                has_tries = conn.execute(
                    "SELECT 1 FROM taskscope_try_run WHERE run_id = ? LIMIT 1", (run_id,)
                ).fetchone()
                (add_missing_rollups if has_tries else rebuild_rollups)(conn, run_id)
            elif not conn.execute(
                "SELECT 1 FROM taskscope_occupancy_10min WHERE run_id = ? LIMIT 1", (run_id,)
            ).fetchone():
                add_ten_minute_occupancy(conn, run_id)  # sums of its per-minute rows
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
    """Every page and every deferred part the pages' JavaScript fetches (``?part=NAME``,
    templates/_macros.html `deferred`), plus the JSON API, over the big run."""
    base = f"/workflow/{BIG_RUN}"
    middle = tasks // 2 - (tasks // 2) % 10 + 9  # a summarize task, with dependencies
    transform_pages = -(-(tasks * 3 // 10) // 50)  # 3 in 10 tasks are transforms, 50 a page
    api = f"/api/runs/{BIG_RUN}"
    return {
        "workflows": "/",
        "workflows_sorted_by_runtime": "/?sort=duration&order=desc",
        "summary": f"{base}/",
        "summary_json": f"{base}/?format=json",
        "summary_part_apps": f"{base}/?part=apps&format=json",
        "summary_part_durations": f"{base}/?part=durations&format=json",
        "summary_part_states": f"{base}/?part=states&format=json",
        "summary_part_timeline": f"{base}/?part=timeline&format=json",
        "summary_part_timeline_window": f"{base}/?part=timeline&from=600&to=610&format=json",
        "summary_part_timeline_app": f"{base}/?part=timeline&app=combine&format=json",
        "summary_part_analysis": f"{base}/?part=analysis&format=json",
        "analysis": f"{base}/analysis",
        "diff": f"{base}/diff?against=bench-small-0",
        "dag_auto_apps": f"{base}/dag",
        "dag_by_state_apps": f"{base}/dag?colour=state",
        "dag_tasks_2000": f"{base}/dag?view=tasks",
        "dag_tasks_2000_by_state": f"{base}/dag?view=tasks&colour=state",
        "dag_tasks_from_middle": f"{base}/dag?view=tasks&first={middle - 9}",
        "dag_one_app_2000": f"{base}/dag?view=tasks&app=summarize",
        "dag_around_task": f"{base}/dag?view=around&task={middle - 4}",
        "dag_around_task_deep": f"{base}/dag?view=around&task={middle - 4}&depth=20",
        "dag_around_join": f"{base}/dag?view=around&task={tasks - 1}",
        "stream": f"{base}/stream",
        "stream_window": f"{base}/stream?from=600&to=603",
        "resources": f"{base}/resources",
        "resources_part_usage_workers": f"{base}/resources?part=usage_workers&format=json",
        "resources_part_usage_samples": f"{base}/resources?part=usage_samples&format=json",
        "resources_part_distributions": f"{base}/resources?part=distributions&format=json",
        "app_page_1": f"{base}/app/transform",
        "app_part_stats": f"{base}/app/transform?part=stats&format=json",
        "app_page_last": f"{base}/app/transform?page={transform_pages}",
        "app_sorted_by_duration": f"{base}/app/transform?sort=duration&order=desc",
        "app_failed_filter": f"{base}/app/transform?state=failed",
        "app_failed_filter_last": f"{base}/app/transform?state=failed&page=60",
        "task": f"{base}/task/{middle}",
        "task_join": f"{base}/task/{tasks - 1}",
        "task_not_found": f"{base}/task/{tasks + 5}",
        "api_runs": "/api/runs",
        "api_run": api,
        "api_apps": f"{api}/apps",
        "api_tasks": f"{api}/tasks",
        "api_tasks_failed": f"{api}/tasks?state=failed",
        "api_task": f"{api}/tasks/{middle}",
        "api_task_resources": f"{api}/tasks/{middle}/resources",
        "api_usage": f"{api}/usage",
        "metrics": "/metrics",
    }


def _one_request(path: Path, url: str) -> dict:
    """In a new server process: the app made as taskscope-visualize makes it (templates
    compiled before the first request), then one cold request (nothing of the database cached
    in the process; the OS page cache is whatever earlier requests left) and one warm (the
    same request again, from the dashboard's cache). Wall and CPU time of the process (all
    its threads: the test client runs the app in one)."""
    client = TestClient(create_app(path, compile_templates=True))
    result: dict = {}
    began = time.perf_counter()
    for which in ("cold", "warm"):
        cpu, wall = time.process_time(), time.perf_counter()
        response = client.get(url)
        result[which] = (time.perf_counter() - wall) * 1000.0
        result[f"{which}_cpu"] = (time.process_time() - cpu) * 1000.0
        result["status"] = response.status_code
        result[f"{which}_pending"] = PENDING in response.text
    # An answer that says it is being computed (a deferred part or an analysis whose read
    # outlasts the wait, visualize/slow_parts.py): asked again, as the browser does, until
    # it has the figures; ready_ms is from the first request to that answer.
    while PENDING in response.text and time.perf_counter() - began < READY_TIMEOUT_S:
        time.sleep(0.1)
        response = client.get(url)
    if result["cold_pending"]:
        result["ready"] = (time.perf_counter() - began) * 1000.0
        result["ready_pending"] = PENDING in response.text  # still, after the timeout
    result["bytes"] = len(response.content)
    return result


def _request_in_fresh_process(path: Path, url: str) -> dict:
    """`_one_request` in a fresh interpreter (not a fork of this one: a forked child pays
    copy-on-write faults on its parent's heap whenever the garbage collector walks it, which
    added up to 80% to the CPU time of the parts that build many objects)."""
    done = subprocess.run(
        [sys.executable, __file__, "--one-request", str(path), url],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    if done.returncode != 0:
        raise RuntimeError(f"the server process for {url} failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def time_variant(path: Path, tasks: int, repeat: int, only: list[str] | None = None) -> dict:
    results = {}
    for name, url in pages(tasks).items():
        if only and name not in only:
            continue
        runs = [_request_in_fresh_process(path, url) for _ in range(repeat)]

        def median(key: str, runs: list[dict] = runs) -> float:
            return round(statistics.median(r[key] for r in runs), 1)

        results[name] = {
            "url": url,
            "status": sorted({r["status"] for r in runs}),
            "bytes": runs[-1]["bytes"],
            "cold_ms": median("cold"),
            "cold_cpu_ms": median("cold_cpu"),
            "warm_ms": median("warm"),
            "warm_cpu_ms": median("warm_cpu"),
            # Whether the answers said "being computed" (in any run), and when the figures
            # came (median over the runs whose first answer was without them).
            "cold_pending": any(r["cold_pending"] for r in runs),
            "warm_pending": any(r["warm_pending"] for r in runs),
        }
        ready = [r for r in runs if "ready" in r]
        if ready:
            results[name]["ready_ms"] = round(statistics.median(r["ready"] for r in ready), 1)
            results[name]["ready_timed_out"] = any(r["ready_pending"] for r in ready)
        print(name, json.dumps(results[name]), file=sys.stderr, flush=True)
    slowest_name = max(results, key=lambda n: results[n]["cold_ms"])
    return {
        "all_under_target_cold": all(r["cold_ms"] < TARGET_MS for r in results.values()),
        "over_target_cold": sorted(
            (n for n in results if results[n]["cold_ms"] >= TARGET_MS),
            key=lambda n: -results[n]["cold_ms"],
        ),
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
    parser.add_argument(
        "--page", action="append", help="time only this page (a name of `pages`); repeatable"
    )
    parser.add_argument(
        "--one-request", nargs=2, metavar=("DATABASE", "URL"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.one_request:  # the server process of one measurement
        print(json.dumps(_one_request(Path(args.one_request[0]), args.one_request[1])))
        return
    folder = Path(tempfile.gettempdir())
    paths = {
        "state": folder / f"taskscope-bench-dashboard-{args.tasks}-state.db",
        "parsl_like": folder / f"taskscope-bench-dashboard-{args.tasks}-parsl.db",
    }
    chosen = args.variant or ["state", "parsl_like"]
    build_s = None
    if args.rebuild or not paths["state"].exists():
        for path in paths.values():
            for suffix in ("", "-wal", "-shm"):
                Path(str(path) + suffix).unlink(missing_ok=True)
        start = time.perf_counter()
        build(paths["state"], args.tasks)
        build_s = round(time.perf_counter() - start, 1)
    # The Parsl-shaped copy is made only when asked for: at 10^6 tasks it is another 4 GB.
    if "parsl_like" in chosen and not paths["parsl_like"].exists():
        parsl_like(paths["state"], paths["parsl_like"])
    add_rollups(paths["state"])
    load_before = os.getloadavg()
    variants = {}
    for variant in chosen:
        variants[variant] = time_variant(paths[variant], args.tasks, args.repeat, args.page)
    report = {
        "bench": "dashboard",
        "machine": f"{platform.machine()} {os.cpu_count()} cpus, shared with other work",
        "load_average_before_after": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
        "cold_means": "a fresh server process (a new interpreter, templates compiled at start "
        "as taskscope-visualize does), its first request; the OS page cache is warm from "
        "earlier requests",
        "pending_means": "cold_pending / warm_pending: that answer said its figures are being "
        "computed (a deferred part or analysis whose read outlasted the wait); ready_ms: from "
        "the first request to the first answer with the figures, asking again every 0.1 s",
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
    if args.page:  # a partial run does not replace the recorded results
        return
    name = "dashboard.json" if args.tasks == 100_000 else f"dashboard-{args.tasks}.json"
    out = Path(__file__).resolve().parent / "results" / name
    out.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
