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

import pytest

from taskscope.visualize import app as app_module
from taskscope.visualize.cli import is_loopback, main


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
    assert "--show-files" in err  # output files withheld, and how to show them


def test_loopback_addresses():
    for address in ("127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost"):
        assert is_loopback(address), address
    for address in ("0.0.0.0", "::", "10.0.0.5", "192.168.1.2", "myhost.example"):
        assert not is_loopback(address), address


@pytest.mark.parametrize(
    ("arguments", "shows_files"),
    [([], True), (["--listen", "127.0.0.1"], True), (["--listen"], False),
     (["--listen", "10.1.2.3"], False), (["--listen", "--show-files"], True)],
)
def test_output_files_are_shown_only_on_loopback_unless_asked(
    arguments: list[str], shows_files: bool, parsl_db: Path, monkeypatch, capsys
):
    import uvicorn

    made = {}

    def fake_create_app(database, debug=False, show_files=True):
        made["show_files"] = show_files
        return object()

    monkeypatch.setattr(app_module, "create_app", fake_create_app)
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: None)
    assert main([str(parsl_db), *arguments]) == 0
    assert made["show_files"] is shows_files
    err = capsys.readouterr().err
    assert ("--show-files" in err) is not shows_files
