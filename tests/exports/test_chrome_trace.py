"""`taskscope export --format chrome-trace`: events that are the database's tries, on lanes
that never overlap, with dependency flows and usage counters; bounded memory."""

from __future__ import annotations

import io
import itertools
import json
import sqlite3
import tracemalloc
from collections import defaultdict
from pathlib import Path

import pytest
from fixture_paths import PARSL_FIXTURE_DB, PARSL_RUN

from taskscope.cli import main
from taskscope.exports.chrome_trace import write_chrome_trace
from taskscope.store.readonly import open_readonly
from taskscope.store.synthetic import SyntheticRun, create_database


def export(tmp_path: Path, db: Path, run: str) -> dict:
    out = tmp_path / "trace.json"
    assert main(["export", str(db), "--run", run, "--format", "chrome-trace", "-o", str(out)]) == 0
    return json.loads(out.read_text())


def names(events: list[dict], kind: str) -> dict:
    key = (lambda e: e["pid"]) if kind == "process_name" else (lambda e: (e["pid"], e["tid"]))
    return {key(e): e["args"]["name"] for e in events if e["ph"] == "M" and e["name"] == kind}


@pytest.mark.parametrize("db_name,run", [("parsl", PARSL_RUN), ("taskscope", "run-failed")])
def test_one_event_per_try_on_its_host_and_worker(tmp_path, taskscope_db, db_name, run):
    db = PARSL_FIXTURE_DB if db_name == "parsl" else taskscope_db
    trace = export(tmp_path, db, run)
    events = trace["traceEvents"]
    slices = [e for e in events if e["ph"] == "X"]
    conn = sqlite3.connect(db)
    tries = {
        (t, y): (host, app)
        for t, y, host, app in conn.execute(
            "SELECT y.task_id, y.try_id, y.hostname, t.task_func_name FROM try y JOIN task t "
            "USING (task_id, run_id) WHERE run_id = ? AND task_try_time_running IS NOT NULL",
            (run,),
        )
    }
    pids = {
        (t, y): p
        for t, y, p in conn.execute(
            "SELECT task_id, try_id, MIN(psutil_process_pid) FROM resource WHERE run_id = ? "
            "GROUP BY 1, 2",
            (run,),
        )
    }
    # taskscope's runs name the worker the writer recorded; Parsl's, the pid of the samples
    workers = {}
    if conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'taskscope_try_run'").fetchone():
        workers = {
            (t, y): w
            for t, y, w in conn.execute(
                "SELECT task_id, try_id, worker FROM taskscope_try_run WHERE run_id = ?", (run,)
            )
        }
    conn.close()
    assert len(slices) == len(tries)
    assert {(e["args"]["task_id"], e["args"]["try_id"]) for e in slices} == set(tries)
    processes, threads = names(events, "process_name"), names(events, "thread_name")
    for event in slices:
        key = (event["args"]["task_id"], event["args"]["try_id"])
        host, app = tries[key]
        assert event["name"] == app and event["dur"] >= 0
        assert processes[event["pid"]].startswith(host)
        if key in workers:  # the worker that ran it
            assert threads[(event["pid"], event["tid"])].startswith(str(workers[key]))
        elif key in pids:  # the pid its samples name
            assert threads[(event["pid"], event["tid"])].startswith(f"worker pid {pids[key]}")
    by_lane = defaultdict(list)
    for event in slices:
        by_lane[(event["pid"], event["tid"])].append((event["ts"], event["ts"] + event["dur"]))
    for lane, spans in by_lane.items():
        spans.sort()
        assert all(b[0] >= a[1] for a, b in itertools.pairwise(spans)), lane


@pytest.mark.parametrize("db_name,run", [("parsl", PARSL_RUN), ("taskscope", "run-completed")])
def test_flows_join_each_dependency_to_its_dependent(tmp_path, taskscope_db, db_name, run):
    db = PARSL_FIXTURE_DB if db_name == "parsl" else taskscope_db
    trace = export(tmp_path, db, run)
    events = trace["traceEvents"]
    slices = {}
    for e in events:
        if e["ph"] == "X":
            slices.setdefault(e["args"]["task_id"], []).append(e)
    starts = {e["id"]: e for e in events if e["ph"] == "s"}
    finishes = {e["id"]: e for e in events if e["ph"] == "f"}
    assert set(starts) == set(finishes)
    conn = sqlite3.connect(db)
    edges = {
        (int(d), t)
        for t, deps in conn.execute(
            "SELECT task_id, task_depends FROM task WHERE run_id = ?", (run,)
        )
        for d in (deps or "").split(",")
        if d.strip()
        # a task that never ran has no slice to draw a flow to or from
        if int(d) in slices and t in slices
    }
    conn.close()
    assert edges
    assert all(isinstance(k, int) for k in starts)
    assert {(s["args"]["from_task"], s["args"]["to_task"]) for s in starts.values()} == edges
    for flow_id, start in starts.items():
        source, target = start["args"]["from_task"], start["args"]["to_task"]
        first = min(slices[target], key=lambda e: e["args"]["try_id"])
        # each end binds to the slice it lies in, on that slice's lane: the start to a try of
        # the dependency (its last one in a real run), the finish to the dependent's first try
        assert any(
            (start["pid"], start["tid"]) == (e["pid"], e["tid"])
            and e["ts"] <= start["ts"] <= e["ts"] + e["dur"]
            for e in slices[source]
        )
        finish = finishes[flow_id]
        assert (finish["pid"], finish["tid"], finish["ts"]) == (
            first["pid"],
            first["tid"],
            first["ts"],
        )
        assert finish["bp"] == "e"
        if db_name == "parsl":  # a real run: a dependent starts after its dependency ended
            assert start["ts"] <= finish["ts"]


def test_counters_and_unfinished_tries_of_a_live_run(tmp_path, taskscope_db):
    events = export(tmp_path, taskscope_db, "run-live")["traceEvents"]
    busy = [e["args"]["busy"] for e in events if e["ph"] == "C" and e["name"] == "workers busy"]
    memory = [e for e in events if e["ph"] == "C" and e["name"].startswith("memory")]
    assert busy and memory and 0 < max(busy) <= 4.001  # the run has four workers
    conn = sqlite3.connect(taskscope_db)
    running = conn.execute(
        "SELECT COUNT(*) FROM try WHERE run_id = 'run-live' AND "
        "task_try_time_running IS NOT NULL AND task_try_time_returned IS NULL"
    ).fetchone()[0]
    conn.close()
    assert running > 0
    assert sum(1 for e in events if e["ph"] == "X" and e["args"].get("unfinished")) == running


class Discard(io.TextIOBase):
    def write(self, text: str) -> int:
        return len(text)


def test_memory_does_not_grow_with_the_run(tmp_path: Path):
    peaks = {}
    for tasks in (4_000, 16_000):
        db = create_database(
            tmp_path / f"{tasks}.db",
            # Without resource samples: the CPU/memory counters come from the dashboard's
            # usage query, which reads at most USAGE_SAMPLE_ROWS samples (bounded by design,
            # but ~8 MB below that cap); what must not grow is the trace's own streaming.
            [SyntheticRun("r", tasks=tasks, workers=8, hosts=2, with_resources=False)],
        )
        conn = open_readonly(db)
        tracemalloc.start()
        counts = write_chrome_trace(conn, "r", Discard())
        peaks[tasks] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        conn.close()
        assert counts["X"] >= tasks
    # 12 bytes a task for the flows; the rest is a fetch batch and the open lanes
    assert peaks[16_000] < peaks[4_000] + 1_000_000, peaks


def test_stdout_and_bad_arguments(tmp_path: Path, capsys):
    assert main(["export", str(PARSL_FIXTURE_DB), "--format", "chrome-trace", "-o", "-"]) == 0
    assert json.loads(capsys.readouterr().out)["otherData"]["run_id"] == PARSL_RUN
    with pytest.raises(SystemExit) as raised:
        main(["export", str(PARSL_FIXTURE_DB), "--format", "svg"])
    assert raised.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_real_htex_run_has_one_lane_per_worker(tmp_path, htex_db):
    conn = sqlite3.connect(htex_db)
    run = conn.execute("SELECT run_id FROM workflow").fetchone()[0]
    workers = {
        (t, y): w
        for t, y, w in conn.execute(
            "SELECT task_id, try_id, worker FROM taskscope_try_run WHERE run_id = ?", (run,)
        )
    }
    failed = {
        (t, y)
        for t, y in conn.execute(
            "SELECT task_id, try_id FROM taskscope_try_failure WHERE run_id = ?", (run,)
        )
    }
    conn.close()
    events = export(tmp_path, htex_db, run)["traceEvents"]
    slices = [e for e in events if e["ph"] == "X"]
    threads = names(events, "thread_name")
    assert len(slices) == len(workers) and failed
    worker_names = {w for w in workers.values() if w}
    for event in slices:
        key = (event["args"]["task_id"], event["args"]["try_id"])
        if workers[key]:
            # on its worker's own lane: the workers' clocks never overlap two tries
            assert threads[(event["pid"], event["tid"])] == workers[key]
        assert ("failed" in event["args"]) == (key in failed)
    assert {threads[(e["pid"], e["tid"])] for e in slices} >= worker_names
    assert len(worker_names) == 2
    busy = [e["args"]["busy"] for e in events if e["ph"] == "C" and e["name"] == "workers busy"]
    assert 0 < max(busy) <= 2.0 + 1e-6
