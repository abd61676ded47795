"""1,000 fuzzed URLs on each kind of database, and on one being written: no 5xx, whatever
the path and query hold."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from urllib.parse import quote

import pytest
from hostile_db import APP_NAMES, RUN_ID, create_hostile_database
from starlette.testclient import TestClient

from taskscope.store.synthetic import SyntheticRun, create_database
from taskscope.visualize.app import create_app

pytestmark = [pytest.mark.attack, pytest.mark.timeout(600)]  # slow only on a loaded machine

URLS_PER_DATABASE = 1000
PARSL_RUN = "85029df9-5f8e-4ab7-810a-f8db9f552f59"
PARAMS = [
    "sort",
    "order",
    "page",
    "name",
    "state",
    "colour",
    "view",
    "task",
    "depth",
    "first",
    "limit",
    "app",
    "gantt_page",
    "part",
    "format",
    "token",
    "against",
]
WEIRD = [
    "",
    "0",
    "-1",
    "1",
    "2",
    "9" * 30,
    "-9" * 20,
    "1e9",
    "nan",
    "inf",
    "0x10",
    "٣",
    "%00",
    "\x00",
    "..",
    "../../etc/passwd",
    "/etc/passwd",
    "a" * 5000,
    "é",
    "😀",
    "<script>alert(1)</script>",
    "' OR 1=1 --",
    '"',
    "%",
    "%%",
    "%zz",
    "json",
    "stats",
    "apps",
    "tasks",
    "around",
    "state",
    "desc",
    "asc",
    "exec_done",
    "failed",
    " ",
    "\t",
    "null",
    "true",
    "[]",
    "{}",
]
# Already percent-encoded: invalid UTF-8, an encoded surrogate, encoded "../" and NUL.
RAW = ["%ED%A0%80", "%FF%FE", "%C0%AF", "%2e%2e%2f%2e%2e%2f", "%00", "%2F", "%25", "%"]


def fuzzed_urls(run_ids: list[str], apps: list[str], tasks: list[int], seed: int) -> list[str]:
    rng = random.Random(seed)

    def segment() -> str:
        choice = rng.random()
        if choice < 0.4 and run_ids:
            return quote(rng.choice(run_ids), safe="")
        if choice < 0.6 and apps:
            return quote(rng.choice(apps), safe="")
        if choice < 0.7:
            return rng.choice(RAW)
        return quote(rng.choice(WEIRD), safe="")

    def query() -> str:
        parts = []
        for _ in range(rng.randint(0, 4)):
            key = rng.choice(PARAMS) if rng.random() < 0.9 else rng.choice(WEIRD)
            value = rng.choice(WEIRD + [str(t) for t in tasks] + apps)
            value = quote(value, safe="") if rng.random() < 0.9 else rng.choice(RAW)
            parts.append(f"{quote(key, safe='')}={value}")
        if rng.random() < 0.1:
            parts.append("&&==&%")
        return ("?" + "&".join(parts)) if parts else ""

    templates = [
        lambda: "/",
        lambda: f"/workflow/{segment()}/",
        lambda: f"/workflow/{segment()}/dag",
        lambda: f"/workflow/{segment()}/resources",
        lambda: f"/workflow/{segment()}/analysis",
        lambda: f"/workflow/{segment()}/diff",
        lambda: "/metrics",
        lambda: f"/workflow/{segment()}/stream",
        lambda: f"/workflow/{segment()}/app/{segment()}",
        lambda: f"/workflow/{segment()}/task/{rng.choice(tasks + [0, 2**63, 2**64, 10**40])}",
        lambda: f"/workflow/{segment()}/task/{segment()}",
        lambda: f"/static/{segment()}",
        lambda: f"/{segment()}/{segment()}",
        lambda: f"/workflow/{segment()}",
        lambda: "/workflow/" + "/".join(segment() for _ in range(rng.randint(2, 6))),
    ]
    return [rng.choice(templates)() + query() for _ in range(URLS_PER_DATABASE)]


def crashed_database(folder: Path) -> Path:
    """A database whose writer was SIGKILLed with rows only in its write-ahead log."""
    db = create_database(folder / "monitoring.db", [SyntheticRun("run-crashed", tasks=60)])
    script = textwrap.dedent(f"""
        import sqlite3, sys, time
        conn = sqlite3.connect({str(db)!r})
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA wal_autocheckpoint = 0")
        conn.execute("UPDATE workflow SET workflow_name = 'half-written'")
        conn.commit()
        conn.execute("BEGIN")
        conn.execute("DELETE FROM task")  # never committed
        print("ready", flush=True)
        time.sleep(60)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert (folder / "monitoring.db-wal").stat().st_size > 0
    return db


@pytest.fixture(scope="module")
def databases(
    tmp_path_factory: pytest.TempPathFactory,
    parsl_db: Path,
    taskscope_db: Path,
    empty_db: Path,
    blank_file_db: Path,
) -> dict[str, Path]:
    return {
        "parsl": parsl_db,
        "taskscope (completed, failed, lost, live)": taskscope_db,
        "empty": empty_db,
        "zero-byte file": blank_file_db,
        "crashed writer": crashed_database(tmp_path_factory.mktemp("crashed")),
        "hostile text": create_hostile_database(
            tmp_path_factory.mktemp("hostile-fuzz") / "monitoring.db"
        ),
    }


def identifiers(db: Path) -> tuple[list[str], list[str], list[int]]:
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        runs = [r[0] for r in conn.execute("SELECT run_id FROM workflow")]
        apps = [r[0] for r in conn.execute("SELECT DISTINCT task_func_name FROM task LIMIT 20")]
        tasks = [r[0] for r in conn.execute("SELECT task_id FROM task LIMIT 20")]
        conn.close()
        return runs, apps, tasks
    except sqlite3.Error:
        return [], [], [1, 2, 3]


@pytest.mark.parametrize(
    "kind",
    [
        "parsl",
        "taskscope (completed, failed, lost, live)",
        "empty",
        "zero-byte file",
        "crashed writer",
        "hostile text",
    ],
)
def test_fuzzed_urls_never_get_a_server_error(kind: str, databases: dict[str, Path]):
    db = databases[kind]
    runs, apps, tasks = identifiers(db)
    if kind == "hostile text":
        runs, apps = runs + [RUN_ID], apps + list(APP_NAMES.values())
    client = TestClient(create_app(db), raise_server_exceptions=False)
    failures = []
    for seed_offset, url in enumerate(fuzzed_urls(runs, apps, tasks, seed=hash(kind) % 1000)):
        response = client.get(url)
        if response.status_code >= 500:
            failures.append((url, response.status_code, response.text[:200]))
        if seed_offset % 3 == 0:  # the same URL as JSON, as a live page asks for it
            joined = url + ("&" if "?" in url else "?") + "format=json"
            response = client.get(joined)
            if response.status_code >= 500:
                failures.append((joined, response.status_code, response.text[:200]))
    assert failures == [], (len(failures), failures[:5])


def test_fuzzed_urls_on_a_database_being_written(tmp_path: Path):
    """The same, while a real MonitoringHub writes a run into the database."""
    from taskscope.monitoring import MonitoringHub
    from taskscope.monitoring.messages import TaskInfo, TaskStatus, WorkflowStart

    db = tmp_path / "monitoring.db"
    hub = MonitoringHub(logging_endpoint=f"sqlite:///{db}")
    run_id = "live-run"
    hub.start(run_id, str(tmp_path / "run"))
    hub.send(
        WorkflowStart(
            run_id,
            "live",
            "1",
            time.time(),
            "h",
            "u",
            str(tmp_path),
            "3",
            "0",
            ["x"],
            os.getpid(),
            hub.heartbeat_interval,
        )
    )
    stop = False

    def write() -> None:
        # New tasks up to a bound (the pages' cost stays that of a 2,000-task run whatever
        # the machine's speed), then state changes of those tasks, until the fuzzing ends.
        task_id = 0
        while not stop:
            now = time.time()
            if task_id < 2000:
                hub.send(TaskInfo(run_id, task_id, "live_app", False, "x", now))
                hub.send(TaskStatus(run_id, task_id, 0, "pending", now))
            else:
                hub.send(TaskStatus(run_id, task_id % 2000, 0, "launched", now))
            task_id += 1
            time.sleep(0.005)

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    try:
        deadline = time.monotonic() + 30
        while not db.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        client = TestClient(create_app(db), raise_server_exceptions=False)
        urls = fuzzed_urls([run_id], ["live_app"], [0, 1, 2, 50], seed=11)
        failures = [
            (url, r.status_code) for url in urls if (r := client.get(url)).status_code >= 500
        ]
        assert failures == [], (len(failures), failures[:5])
    finally:
        stop = True
        writer.join(timeout=10)
        hub.close()
