"""Soak: 10^6 no-op tasks (``--tasks``), unmonitored and monitored, in one script.

The workload of issue 10: no-op tasks in chunks of 1,000, each chunk gathered by one task
(a task depending on the 1,000), HighThroughputExecutor with 2 workers,
``resource_monitoring_interval=1``. Each mode runs in a fresh interpreter. Prints one JSON
line and saves it to bench/results/soak.json (or soak-<tasks>.json for other sizes):

- tasks/s both ways (first submit to last result) and their ratio;
- cleanup seconds (last result to ``cleanup()`` returning);
- rows expected and present per table, and tries without a running / running_ended status
  or a resource row;
- bytes per task (the database and its WAL);
- the writer's largest lag: seconds between now and the newest status row written, and the
  most events waiting in the spool, sampled every second;
- peak RSS of the workflow process (both ways) and of the writer process.

Run: .venv/bin/python bench/soak.py [--tasks 100000]; ``--append-cost`` measures one spool
append (a 4 KB frame) instead.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
CHUNK = 1000


def noop(i):
    return i


def gather(*values):
    return len(values)


class Watcher:
    """Samples the writer's RSS and lag every second while the run goes on."""

    def __init__(self, db: Path, writer_pid: int | None) -> None:
        self.db = db
        self.writer_pid = writer_pid
        self.writer_rss_peak = 0
        self.lag_s_max = 0.0
        self.backlog_events_max = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        import psutil

        from taskscope.store.spool import unwritten
        from taskscope.store.timefmt import utc_text

        writer = psutil.Process(self.writer_pid) if self.writer_pid else None
        while not self._stop.wait(1.0):
            try:
                if writer is not None:
                    self.writer_rss_peak = max(self.writer_rss_peak, writer.memory_info().rss)
            except psutil.Error:
                writer = None
            try:
                conn = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=5)
                try:
                    newest = conn.execute("SELECT max(timestamp) FROM status").fetchone()[0]
                    state = unwritten(self.db, conn)
                finally:
                    conn.close()
            except sqlite3.Error:
                continue
            if newest:
                lag = _seconds_between(newest, utc_text(time.time()))
                self.lag_s_max = max(self.lag_s_max, lag)
            if state is not None:
                self.backlog_events_max = max(self.backlog_events_max, state.events)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def _seconds_between(earlier: str, later: str) -> float:
    from datetime import datetime

    fmt = "%Y-%m-%d %H:%M:%S.%f"
    return (datetime.strptime(later, fmt) - datetime.strptime(earlier, fmt)).total_seconds()


def run_mode(tasks: int, monitored: bool, workdir: Path) -> dict:
    import taskscope
    from taskscope.config import Config
    from taskscope.executors import HighThroughputExecutor
    from taskscope.monitoring import MonitoringHub

    db = workdir / "monitoring.db"
    hub = (
        MonitoringHub(logging_endpoint=f"sqlite:///{db}", resource_monitoring_interval=1)
        if monitored
        else None
    )
    config = Config(
        executors=[HighThroughputExecutor(label="htex", max_workers_per_node=2)],
        monitoring=hub,
        run_dir=str(workdir / "runinfo"),
        strategy="none",
        app_cache=False,
    )
    dfk = taskscope.load(config)
    task = taskscope.python_app(noop, executors=["htex"])
    gatherer = taskscope.python_app(gather, executors=["htex"])
    executor = dfk.executors["htex"]
    deadline = time.monotonic() + 60
    while executor.connected_workers < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    watcher = Watcher(db, hub.writer_pid) if monitored else None
    start = time.perf_counter()
    gathers = []
    for first in range(0, tasks, CHUNK):
        chunk = [task(i) for i in range(first, min(first + CHUNK, tasks))]
        gathers.append(gatherer(*chunk))
    gathered = sum(f.result() for f in gathers)
    last_result = time.perf_counter()
    assert gathered == tasks, gathered
    dfk.cleanup()
    cleaned = time.perf_counter()
    taskscope.clear()
    total = tasks + len(gathers)
    out: dict = {
        "tasks_per_s": round(total / (last_result - start), 1),
        "seconds": round(last_result - start, 2),
        "cleanup_s": round(cleaned - last_result, 3),
        "workflow_rss_peak_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    if monitored:
        watcher.stop()
        out.update(_rows(db, total))
        size = sum(p.stat().st_size for p in workdir.glob("monitoring.db*") if p.is_file())
        out["db_bytes"] = size
        out["bytes_per_task"] = round(size / total)
        out["writer_rss_peak_mb"] = round(watcher.writer_rss_peak / 2**20, 1)
        out["writer_largest_lag_s"] = round(watcher.lag_s_max, 2)
        out["writer_largest_backlog_events"] = watcher.backlog_events_max
        out["writer_restarts"] = hub._writer.restarts
        out["messages_dropped"] = hub.messages_dropped
    return out


def _rows(db: Path, total: int) -> dict:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:

        def one(sql: str) -> int:
            return conn.execute(sql).fetchone()[0]

        present = {
            "workflow": one("SELECT count(*) FROM workflow"),
            "task": one("SELECT count(*) FROM task"),
            "try": one("SELECT count(*) FROM try"),
            "status": one("SELECT count(*) FROM status"),
            "resource_tries": one(
                "SELECT count(*) FROM (SELECT DISTINCT task_id, try_id FROM resource)"
            ),
            "taskscope_task_state": one("SELECT count(*) FROM taskscope_task_state"),
        }
        # pending, launched, running, running_ended, exec_done for every task.
        expected = {
            "workflow": 1,
            "task": total,
            "try": total,
            "status": 5 * total,
            "resource_tries": total,
            "taskscope_task_state": total,
        }
        missing_running = one(
            "SELECT count(*) FROM try WHERE NOT EXISTS (SELECT 1 FROM status s WHERE "
            "s.task_id = try.task_id AND s.try_id = try.try_id AND s.run_id = try.run_id "
            "AND s.task_status_name = 'running_ended')"
        )
        counts = conn.execute(
            "SELECT tasks_completed_count, time_completed IS NOT NULL FROM workflow"
        ).fetchone()
    finally:
        conn.close()
    return {
        "rows_expected": expected,
        "rows_present": present,
        "rows_lost": {k: expected[k] - present[k] for k in expected},
        "tries_without_running_ended": missing_running,
        "tasks_completed_count": counts[0],
        "time_completed_written": bool(counts[1]),
    }


def in_fresh_process(tasks: int, monitored: bool) -> dict:
    with tempfile.TemporaryDirectory(prefix="taskscope-soak-") as d:
        done = subprocess.run(
            [
                sys.executable,
                __file__,
                "--mode",
                "monitored" if monitored else "unmonitored",
                "--tasks",
                str(tasks),
                "--dir",
                d,
            ],
            check=True,
            stdout=subprocess.PIPE,
            text=True,
        )
    return json.loads(done.stdout.strip().splitlines()[-1])


def spool_append_cost(frames: int = 20_000, size: int = 4096) -> dict:
    """Microseconds per append of a ``size``-byte frame to a spool segment (no fsync)."""
    from taskscope.store.spool import SpoolWriter, new_stream_id

    payload = os.urandom(size)
    with tempfile.TemporaryDirectory(prefix="taskscope-spool-") as d:
        writer = SpoolWriter(Path(d), new_stream_id("bench"))
        started = time.perf_counter()
        cpu0 = time.process_time()
        for _ in range(frames):
            writer.append(payload)
        elapsed = time.perf_counter() - started
        cpu = time.process_time() - cpu0
        writer.close()
    return {
        "section": "spool-append",
        "frame_bytes": size,
        "frames": frames,
        "us_per_frame": round(1e6 * elapsed / frames, 1),
        "cpu_us_per_frame": round(1e6 * cpu / frames, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=1_000_000)
    parser.add_argument("--mode", choices=["monitored", "unmonitored"])
    parser.add_argument("--dir")
    parser.add_argument(
        "--append-cost", action="store_true", help="only measure the cost of one spool append"
    )
    args = parser.parse_args()
    if args.append_cost:
        print(json.dumps(spool_append_cost()))
        return
    if args.mode:
        print(json.dumps(run_mode(args.tasks, args.mode == "monitored", Path(args.dir))))
        return
    load_before = os.getloadavg()
    unmonitored = in_fresh_process(args.tasks, False)
    monitored = in_fresh_process(args.tasks, True)
    line = {
        "section": "soak",
        "tasks": args.tasks,
        "gathers": -(-args.tasks // CHUNK),
        "workers": 2,
        "resource_monitoring_interval": 1,
        "unmonitored": unmonitored,
        "monitored": monitored,
        "monitored_over_unmonitored": round(
            monitored["tasks_per_s"] / unmonitored["tasks_per_s"], 3
        ),
        "monitoring_adds_workflow_rss_mb": round(
            monitored["workflow_rss_peak_mb"] - unmonitored["workflow_rss_peak_mb"], 1
        ),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "loadavg_before": [round(x, 2) for x in load_before],
        "loadavg_after": [round(x, 2) for x in os.getloadavg()],
    }
    print(json.dumps(line))
    name = "soak.json" if args.tasks == 1_000_000 else f"soak-{args.tasks}.json"
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / name).write_text(json.dumps(line, indent=1) + "\n")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    main()
