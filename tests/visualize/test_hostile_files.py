"""Hostile stdout/stderr paths in a database: the dashboard shows the path and why it does
not show the contents, never blocks on them, and a signal still stops the server."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from hostile_files import hostile_paths
from starlette.testclient import TestClient

from taskscope.store.synthetic import create_database, standard_runs
from taskscope.visualize.app import create_app
from taskscope.visualize.filetail import READ_TIMEOUT_S, FileTail, tails

pytestmark = [pytest.mark.attack, pytest.mark.timeout(600)]  # slow only on a loaded machine

PARSL_RUN = "85029df9-5f8e-4ab7-810a-f8db9f552f59"


def tails_within(paths: list[str], limit_s: float = 60.0) -> list[FileTail | None]:
    """`tails`, failing the test instead of hanging it if the call blocks."""
    result: list = []
    worker = threading.Thread(target=lambda: result.append(tails(paths)), daemon=True)
    worker.start()
    worker.join(limit_s)
    assert result, f"tails({paths}) did not return within {limit_s} s"
    return result[0]


def test_each_hostile_path_shows_the_path_and_a_reason(tmp_path: Path):
    cases = hostile_paths(tmp_path)
    names = list(cases)
    shown = tails_within([cases[name][0] for name in names])
    for name, tail in zip(names, shown, strict=True):
        path, reason = cases[name]
        assert tail is not None and tail.path == path, name
        assert not tail.readable and tail.lines == [], (name, tail)
        assert reason in tail.note, (name, tail.note)
    environ = tails_within(["/proc/self/environ"])[0]
    assert "PATH=" not in environ.note


def test_regular_files_and_symlinks_to_them_are_shown(tmp_path: Path):
    out = tmp_path / "task.out"
    out.write_text("".join(f"line {i}\n" for i in range(100)))
    (tmp_path / "link.out").symlink_to(out)
    big = tmp_path / "big.out"
    big.write_text("x" * 100 + "\n" + "".join(f"tail {i}\n" for i in range(5000)))
    plain, linked, large = tails_within([str(out), str(tmp_path / "link.out"), str(big)])
    assert plain.readable and plain.lines[-1] == "line 99" and len(plain.lines) == 40
    assert linked.readable and linked.lines == plain.lines
    assert large.readable and large.lines[-1] == "tail 4999" and "x" * 100 not in large.lines


def test_relative_path_is_read_against_the_run_directory(tmp_path: Path):
    (tmp_path / "rel.out").write_text("relative output\n")
    shown = tails(["rel.out"], base=tmp_path)[0]
    assert shown.readable and shown.lines == ["relative output"]


def hostile_database(folder: Path, paths: list[str]) -> tuple[Path, list[int]]:
    """A taskscope database whose completed run's first tasks name `paths` as stdout."""
    outputs = folder / "outputs"
    outputs.mkdir(parents=True)
    db = create_database(folder / "monitoring.db", standard_runs(outputs))
    conn = sqlite3.connect(db)
    try:
        ids = [
            row[0]
            for row in conn.execute(
                "SELECT task_id FROM task WHERE run_id = 'run-completed' ORDER BY task_id LIMIT ?",
                (len(paths),),
            )
        ]
        for task_id, path in zip(ids, paths, strict=True):
            conn.execute(
                "UPDATE task SET task_stdout = ?, task_stderr = ? WHERE run_id = "
                "'run-completed' AND task_id = ?",
                (path, path, task_id),
            )
        conn.commit()
    finally:
        conn.close()
    return db, ids


def test_task_pages_show_hostile_paths_with_their_reason(tmp_path: Path):
    files = tmp_path / "files"
    files.mkdir()
    cases = hostile_paths(files)
    db, ids = hostile_database(tmp_path / "db", [path for path, _ in cases.values()])
    client = TestClient(create_app(db))
    for task_id, (name, (path, reason)) in zip(ids, cases.items(), strict=True):
        response = client.get(f"/workflow/run-completed/task/{task_id}")
        assert response.status_code == 200, name
        assert path in response.text and reason in response.text, name
    environ = client.get(f"/workflow/run-completed/task/{ids[list(cases).index('proc environ')]}")
    assert "PATH=" not in environ.text


def test_hostile_paths_in_a_parsl_database_and_in_a_live_and_a_lost_run(
    tmp_path: Path, parsl_db: Path
):
    files = tmp_path / "files"
    files.mkdir()
    cases = hostile_paths(files)
    paths = [path for path, _ in cases.values()]
    parsl = tmp_path / "parsl.db"
    shutil.copy(parsl_db, parsl)
    synthetic, _ = hostile_database(tmp_path / "db", [])
    conn = sqlite3.connect(parsl)
    conn2 = sqlite3.connect(synthetic)
    try:
        targets = []
        for db_conn, db, runs in (
            (conn, parsl, (PARSL_RUN,)),
            (conn2, synthetic, ("run-live", "run-lost")),
        ):
            for run_id in runs:
                ids = [
                    r[0]
                    for r in db_conn.execute(
                        "SELECT task_id FROM task WHERE run_id = ? ORDER BY task_id LIMIT ?",
                        (run_id, len(paths)),
                    )
                ]
                for task_id, path in zip(ids, paths, strict=False):
                    db_conn.execute(
                        "UPDATE task SET task_stdout = ?, task_stderr = ? WHERE "
                        "run_id = ? AND task_id = ?",
                        (path, path, run_id, task_id),
                    )
                    targets.append((db, run_id, task_id, path))
            db_conn.commit()
    finally:
        conn.close()
        conn2.close()
    clients = {db: TestClient(create_app(db)) for db in (parsl, synthetic)}
    reasons = dict(cases.values())
    for db, run_id, task_id, path in targets:
        response = clients[db].get(f"/workflow/{run_id}/task/{task_id}")
        assert response.status_code == 200, (db.name, run_id, task_id)
        assert path in response.text and reasons[path] in response.text, (db.name, path)
        assert "PATH=" not in response.text


RECORDING_SCRIPT = """
import json, os, sqlite3, sys, time
from taskscope.monitoring import MonitoringHub
from taskscope.monitoring.messages import TaskInfo, TaskStatus, WorkflowStart

db, run_dir, paths = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
hub = MonitoringHub(logging_endpoint="sqlite:///" + db)
hub.start("run-recorded", run_dir)
now = time.time()
hub.send(WorkflowStart("run-recorded", "hostile", "1", now, "h", "u", run_dir, "3", "0", ["x"],
                       os.getpid(), hub.heartbeat_interval))
for task_id, path in enumerate(paths):
    hub.send(TaskInfo("run-recorded", task_id, "cat", False, "x", now, stdout=path, stderr=path))
    hub.send(TaskStatus("run-recorded", task_id, 0, "pending", now))
hub._writer.flush()
while True:
    try:
        conn = sqlite3.connect("file:" + db + "?mode=ro", uri=True)
        if conn.execute("SELECT count(*) FROM task").fetchone()[0] == len(paths):
            break
    except sqlite3.Error:
        pass
    time.sleep(0.1)
print(hub.writer_pid, flush=True)
time.sleep(600)
"""


def test_hostile_paths_recorded_by_a_live_run_and_left_by_a_killed_one(tmp_path: Path):
    """The paths come from taskscope's own monitoring (a bash app may name any file): pages
    of the run while its writer is live, then once workflow and writer are SIGKILLed."""
    import json

    files = tmp_path / "files"
    files.mkdir()
    cases = hostile_paths(files)
    db = tmp_path / "monitoring.db"
    paths = [path for path, _ in cases.values()]
    proc = subprocess.Popen(
        [sys.executable, "-c", RECORDING_SCRIPT, str(db), str(tmp_path / "run"), json.dumps(paths)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        writer_pid = int(proc.stdout.readline())

        def check(when: str) -> None:
            client = TestClient(create_app(db), raise_server_exceptions=False)
            for task_id, (path, reason) in enumerate(cases.values()):
                response = client.get(f"/workflow/run-recorded/task/{task_id}")
                assert response.status_code == 200, (when, path, response.text[:300])
                assert path in response.text and reason in response.text, (when, path)
                assert "PATH=" not in response.text
            for url in ("/", "/workflow/run-recorded/", "/workflow/run-recorded/analysis"):
                assert client.get(url).status_code == 200, (when, url)

        check("live")
        proc.send_signal(signal.SIGKILL)
        try:
            os.kill(writer_pid, signal.SIGKILL)
        except ProcessLookupError:
            pass  # it saw its workflow die and finished first: a crashed run all the same
        proc.wait(30)
        time.sleep(0.5)  # let the kernel take the killed writer's locks away
        check("killed")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(db: Path, port: int, *extra: str) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-m", "taskscope.visualize.cli", str(db), "--port", str(port), *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return proc
        except OSError as exc:
            if proc.poll() is not None:
                raise AssertionError(proc.communicate()[1]) from exc
            time.sleep(0.2)
    proc.kill()
    raise AssertionError("the dashboard did not start listening")


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_fifo_viewed_50_times_blocks_nothing_and_sigterm_stops_the_server(tmp_path: Path):
    fifo = tmp_path / "stdout.fifo"
    os.mkfifo(fifo)
    db, (task_id,) = hostile_database(tmp_path / "db", [str(fifo)])
    port = free_port()
    proc = start_server(db, port, "--no-token")
    base = f"http://127.0.0.1:{port}"
    try:
        with ThreadPoolExecutor(10) as pool:
            views = list(pool.map(get, [f"{base}/workflow/run-completed/task/{task_id}"] * 50))
        assert all(status == 200 and "FIFO" in body for status, body in views), [
            (status, body[:300]) for status, body in views if status != 200 or "FIFO" not in body
        ]
        status, body = get(f"{base}/")  # every other page still answers
        assert status == 200 and "run-completed" in body
        # A view in flight when the signal arrives must not keep the server up either.
        in_flight = threading.Thread(
            target=get, args=(f"{base}/workflow/run-completed/task/{task_id}",), daemon=True
        )
        in_flight.start()
        signalled = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        stopped_after = time.monotonic() - signalled
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
    # The promise is 2 s; the bound is looser only because the test machine may be loaded.
    assert stopped_after < 2 + READ_TIMEOUT_S, stopped_after


def test_oversized_request_line_gets_414_not_a_reset(tmp_path: Path, parsl_db: Path):
    port = free_port()
    proc = start_server(parsl_db, port, "--no-token")
    try:
        for path_bytes, expected in ((140 * 1024, b"414"), (200, b"200")):
            with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
                request = b"GET /" + b"a" * path_bytes + b" HTTP/1.1\r\nHost: x\r\n\r\n"
                if expected == b"200":
                    request = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
                sock.sendall(request)
                answer = b""
                while chunk := sock.recv(65536):  # a reset would raise here
                    answer += chunk
            assert answer.split(b" ", 2)[1] == expected, answer[:200]
        status, _ = get(f"http://127.0.0.1:{port}/")
        assert status == 200
    finally:
        proc.terminate()
        proc.communicate(timeout=30)


def test_the_failure_analysis_reads_no_hostile_stderr(tmp_path: Path):
    """The failure groups show an example's stderr tail: the same rules as the task page."""
    from taskscope.store.analysis.failures import read_tail

    files = tmp_path / "files"
    files.mkdir()
    cases = hostile_paths(files)
    for name, (path, _) in cases.items():
        assert tails_within_call(lambda path=path: read_tail(path, None)) is None, name
    good = files / "stderr.txt"
    good.write_text("boom\n")
    assert read_tail(str(good), None) == ["boom"]


def tails_within_call(call, limit_s: float = 60.0):
    result: list = []
    worker = threading.Thread(target=lambda: result.append(call()), daemon=True)
    worker.start()
    worker.join(limit_s)
    assert result, f"{call} did not return within {limit_s} s"
    return result[0]
