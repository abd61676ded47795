"""Exports at scale: /metrics scrape time and the streamed exports' time and peak memory.

Builds (once, cached under the temp dir) a database with one live run of `--tasks` tasks
(default 1,000,000: ~1.1 M tries, ~5.5 M status rows, 1.1 M resource samples, the writer's
state table) and a few finished runs, then measures, each in a fresh interpreter:

- ``/metrics`` through Starlette's TestClient: the first scrape and the median of 5 more
  (a live run is read on every scrape; finished runs are cached);
- ``taskscope export --format chrome-trace``: wall time, peak RSS, file size, events;
- ``taskscope report``: wall time, file size.

Prints one JSON line and writes bench/results/exports.json.

    .venv/bin/python bench/exports.py [--tasks 1000000] [--rebuild]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from taskscope.store.synthetic import SyntheticRun, create_database

LIVE_RUN = "bench-live"
RESULTS = Path(__file__).with_name("results")

SCRAPE = """
import json, statistics, sys, time, warnings
warnings.simplefilter("ignore")
from starlette.testclient import TestClient
from taskscope.visualize.app import create_app
client = TestClient(create_app(sys.argv[1]))
t = time.perf_counter(); r = client.get("/metrics"); first = time.perf_counter() - t
assert r.status_code == 200, r.text[:300]
times, ages = [], []
for _ in range(10):  # a scrape a second; the figures are re-read in the background
    time.sleep(1.0)
    t = time.perf_counter(); r = client.get("/metrics"); times.append(time.perf_counter() - t)
    ages += [float(l.split()[-1]) for l in r.text.splitlines()
             if l.startswith("taskscope_metrics_age_seconds")]
print(json.dumps({"first_ms": round(first * 1000, 1),
                  "median_ms": round(statistics.median(times) * 1000, 1),
                  "max_ms": round(max(times) * 1000, 1),
                  "all_ms": [round(x * 1000, 1) for x in times],
                  "max_figures_age_s": max(ages), "bytes": len(r.text),
                  "lines": r.text.count("\\n")}))
"""

PEAK = """
import json, resource, runpy, sys, time
sys.argv = ["taskscope"] + sys.argv[1:]
t = time.perf_counter()
from taskscope.cli import main
code = main(sys.argv[1:])
peak_mb = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
print(json.dumps({"code": code, "seconds": round(time.perf_counter() - t, 2),
                  "peak_rss_mb": peak_mb}))
"""


def build(path: Path, tasks: int) -> None:
    runs = [
        SyntheticRun(
            LIVE_RUN,
            tasks=tasks,
            status="running",
            retry_fraction=0.1,
            fail_fraction=0.01,
            samples_per_try=1,
            workers=64,
            hosts=4,
            task_seconds=3.0,
            workflow_name="bench",
            heartbeat_interval=36000.0,
        )
    ]
    runs += [
        SyntheticRun(f"bench-done-{i}", tasks=2000, workflow_name="bench", seed=i + 10)
        for i in range(5)
    ]
    create_database(path, runs)


def python(code: str, *args: str) -> dict:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    out = subprocess.run(
        [sys.executable, "-c", code, *args], check=True, capture_output=True, text=True, env=env
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=1_000_000)
    parser.add_argument("--rebuild", action="store_true")
    parser.add_argument(
        "--parts",
        default="metrics,chrome_trace,report",
        help="comma-separated: metrics, chrome_trace, report",
    )
    args = parser.parse_args()
    folder = Path(tempfile.gettempdir()) / f"taskscope-bench-exports-{args.tasks}"
    folder.mkdir(exist_ok=True)
    db = folder / "monitoring.db"
    built_s = None
    if args.rebuild or not db.exists():
        for suffix in ("", "-wal", "-shm"):
            Path(str(db) + suffix).unlink(missing_ok=True)
        started = time.perf_counter()
        build(db, args.tasks)
        built_s = round(time.perf_counter() - started, 1)
    result: dict = {
        "bench": "exports",
        "tasks": args.tasks,
        "built_s": built_s,
        "db_mb": round(db.stat().st_size / 2**20, 1),
        "python": platform.python_version(),
        "load": os.getloadavg()[0],
    }
    parts = set(args.parts.split(","))
    if "metrics" in parts:
        result["metrics"] = python(SCRAPE, str(db))
    if "chrome_trace" in parts:
        trace = folder / "trace.json"
        result["chrome_trace"] = python(
            PEAK, "export", str(db), "--run", LIVE_RUN, "--format", "chrome-trace", "-o", str(trace)
        )
        result["chrome_trace"]["file_mb"] = round(trace.stat().st_size / 2**20, 1)
        trace.unlink()
    if "report" in parts:
        report = folder / "report.html"
        result["report"] = python(PEAK, "report", str(db), "--run", LIVE_RUN, "-o", str(report))
        result["report"]["file_mb"] = round(report.stat().st_size / 2**20, 2)
    print(json.dumps(result))
    RESULTS.mkdir(exist_ok=True)
    saved = RESULTS / "exports.json"
    previous = json.loads(saved.read_text()) if saved.exists() else {}
    saved.write_text(json.dumps({**previous, **result}, indent=2) + "\n")


if __name__ == "__main__":
    main()
