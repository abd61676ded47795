"""`taskscope-visualize`: database argument forms, errors, and serving on a real port."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from taskscope.visualize.cli import main


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_missing_database_is_a_clear_error_and_creates_nothing(tmp_path: Path, capsys):
    assert main([str(tmp_path / "missing.db")]) == 1
    assert "no monitoring database" in capsys.readouterr().err
    assert main([f"sqlite:///{tmp_path}/also-missing.db"]) == 1
    assert list(tmp_path.iterdir()) == []


def test_no_argument_and_no_default_database(tmp_path: Path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main([]) == 1
    err = capsys.readouterr().err
    assert "monitoring.db" in err and "runinfo/monitoring.db" in err
    assert list(tmp_path.iterdir()) == []


def test_serves_runinfo_database_and_prints_url(tmp_path: Path, parsl_db: Path):
    (tmp_path / "runinfo").mkdir()
    shutil.copy(parsl_db, tmp_path / "runinfo" / "monitoring.db")
    port = free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "taskscope.visualize.cli", "--port", str(port)],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    try:
        url = f"http://127.0.0.1:{port}/"
        deadline = time.monotonic() + 30
        body = None
        while time.monotonic() < deadline and body is None:
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    body = response.read().decode()
            except OSError:
                time.sleep(0.2)
        assert body is not None and "diamond-sample" in body
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=15)
    assert "runinfo/monitoring.db" in out and url in out
    assert "WARNING" not in err


def test_bare_listen_warns_about_the_network(tmp_path: Path, parsl_db: Path):
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "taskscope.visualize.cli", str(parsl_db), "--listen",
         "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2):
                    break
            except OSError:
                time.sleep(0.2)
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=15)
    assert "reachable from the network" in err
