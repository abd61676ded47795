"""Time `taskscope analyze` on a synthetic database with one run of 1,000,000 tasks.

Builds (once, cached under the temp dir) a taskscope database of one completed 10^6-task run
(4 hosts x 64 workers, ~10% retried, ~2% failing for good with their dependents in dep_fail,
2 resource samples per try), then times:

- the whole command, `python -m taskscope.cli analyze DB --json`, in a fresh process (what a
  user waits for), median of `--repeat` runs;
- each analysis alone, in this process, so a slow part is easy to find.

Prints one JSON line and writes bench/results/analysis.json.

    .venv/bin/python bench/analysis.py [--tasks 1000000] [--repeat 3] [--rebuild]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from taskscope.store.analysis.context import run_context
from taskscope.store.analysis.critical_path import critical_path
from taskscope.store.analysis.diff import run_diff
from taskscope.store.analysis.efficiency import app_efficiency
from taskscope.store.analysis.failures import failure_groups
from taskscope.store.analysis.forecast import forecast
from taskscope.store.analysis.hosts import host_health
from taskscope.store.analysis.stragglers import cohorts, stragglers
from taskscope.store.readonly import open_readonly
from taskscope.store.synthetic import SyntheticRun, create_database

TARGET_S = 5.0
RUN = "analysis-big"


def build(path: Path, tasks: int) -> None:
    create_database(
        path,
        [
            SyntheticRun(
                RUN,
                tasks=tasks,
                status="completed",
                workers=64,
                hosts=4,
                task_seconds=3.0,
                retry_fraction=0.1,
                fail_fraction=0.02,
                samples_per_try=2,
                workflow_name="bench",
            )
        ],
    )


def timed(action) -> tuple[float, object]:
    started = time.perf_counter()
    value = action()
    return time.perf_counter() - started, value


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--rebuild", action="store_true")
    args = parser.parse_args()
    path = Path(tempfile.gettempdir()) / f"taskscope-bench-analysis-{args.tasks}.db"
    if args.rebuild or not path.exists():
        path.unlink(missing_ok=True)
        build_s, _ = timed(lambda: build(path, args.tasks))
        print(f"built {path} in {build_s:.0f} s", file=sys.stderr)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    command = [sys.executable, "-m", "taskscope.cli", "analyze", str(path), "--json"]
    totals, cpu = [], []
    document = None
    for _ in range(args.repeat):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        seconds, result = timed(
            lambda: subprocess.run(command, capture_output=True, text=True, check=True, env=env)
        )
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        totals.append(seconds)
        # CPU of the command itself: on a shared, loaded machine wall time mostly measures
        # the other processes.
        cpu.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
        document = json.loads(result.stdout)
    conn = open_readonly(path)
    try:
        parts = {}
        parts["context_s"], ctx = timed(lambda: run_context(conn, RUN))
        parts["failures_s"], groups = timed(lambda: failure_groups(ctx))
        parts["critical_path_s"], path_result = timed(lambda: critical_path(ctx))
        parts["stragglers_s"], found = timed(lambda: stragglers(ctx, cohorts(ctx)))
        parts["hosts_s"], _ = timed(lambda: host_health(ctx))
        parts["efficiency_s"], _ = timed(lambda: app_efficiency(ctx, groups, 0.0))
        parts["forecast_s"], _ = timed(lambda: forecast(ctx))
        parts["diff_with_itself_s"], _ = timed(lambda: run_diff(conn, RUN, RUN))
    finally:
        conn.close()
    assert document is not None
    figures = {
        "bench": "analysis",
        "tasks": args.tasks,
        "database_mb": round(path.stat().st_size / 1e6, 1),
        "analyze_json_s_median": round(statistics.median(totals), 2),
        "analyze_json_s_all": [round(t, 2) for t in totals],
        "analyze_json_cpu_s_median": round(statistics.median(cpu), 2),
        "target_s": TARGET_S,
        "parts_s": {k: round(v, 2) for k, v in parts.items()},
        "failure_groups": len(document["failures"]),
        "failed_tries": sum(g["count"] for g in document["failures"] if g["cause"] != "dependency"),
        "critical_path_steps": len(path_result.tasks),
        "stragglers": len(found),
        "python": platform.python_version(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }
    line = json.dumps(figures)
    print(line)
    results = Path(__file__).with_name("results")
    results.mkdir(exist_ok=True)
    (results / "analysis.json").write_text(line + "\n")


if __name__ == "__main__":
    main()
