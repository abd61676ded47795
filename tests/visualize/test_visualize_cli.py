"""`taskscope-visualize`: database argument forms, errors, and serving on a real port."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
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


def printed_url(proc: subprocess.Popen, seen: list[str] | None = None) -> str:
    """The address the CLI prints for the browser (read from its stdout as it starts); the
    lines read are appended to `seen`."""
    for line in proc.stdout:
        if seen is not None:
            seen.append(line)
        found = re.search(r"open (http://\S+) in a browser", line)
        if found:
            return found.group(1)
    raise AssertionError(f"no URL printed; stderr: {proc.stderr.read()}")


def wait_listening(port: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"nothing listens on port {port}")


def status_of(url: str, opener=None) -> tuple[int, str]:
    try:
        with (opener or urllib.request.build_opener()).open(url, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_serves_runinfo_database_with_a_token_in_the_printed_url(tmp_path: Path, parsl_db: Path):
    (tmp_path / "runinfo").mkdir()
    shutil.copy(parsl_db, tmp_path / "runinfo" / "monitoring.db")
    port = free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "taskscope.visualize.cli", "--port", str(port)],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    printed: list[str] = []
    try:
        url = printed_url(proc, printed)
        wait_listening(port)
        base = f"http://127.0.0.1:{port}/"
        assert url.startswith(base + "?token=") and len(url) > len(base) + 40
        status, body = status_of(base)  # another user, without the token
        assert status == 401 and "token" in body and "diamond-sample" not in body
        assert status_of(base + "?token=wrong")[0] == 403
        assert status_of(base + "static/plotly.min.js")[0] == 401
        browser = urllib.request.build_opener(urllib.request.HTTPCookieProcessor())
        status, body = status_of(url, browser)  # redirected, the token kept in a cookie
        assert status == 200 and "diamond-sample" in body
        status, body = status_of(base + "workflow/85029df9-5f8e-4ab7-810a-f8db9f552f59/", browser)
        assert status == 200 and "diamond-sample" in body
        rebound = urllib.request.Request(url, headers={"Host": f"evil.example:{port}"})
        assert status_of(rebound)[0] == 403  # DNS rebinding: another name for 127.0.0.1
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=15)
    assert "runinfo/monitoring.db" in "".join(printed) + out
    assert "WARNING" not in err


def test_no_token_serves_anyone_and_warns(tmp_path: Path, parsl_db: Path):
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "taskscope.visualize.cli",
            str(parsl_db),
            "--no-token",
            "--port",
            str(port),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        url = printed_url(proc)
        wait_listening(port)
        assert "token" not in url
        status, body = status_of(url)
        assert status == 200 and "diamond-sample" in body
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=15)
    assert "WARNING: --no-token" in err and "every user of this machine" in err


def test_bare_listen_warns_about_the_network(tmp_path: Path, parsl_db: Path):
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "taskscope.visualize.cli",
            str(parsl_db),
            "--listen",
            "--port",
            str(port),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        wait_listening(port)
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


def _loopback_socket() -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    return sock


@pytest.mark.parametrize(
    ("arguments", "shows_files"),
    [
        ([], True),
        (["--listen", "127.0.0.1"], True),
        (["--listen"], False),
        (["--listen", "10.1.2.3"], False),
        (["--listen", "--show-files"], True),
    ],
)
def test_output_files_are_shown_only_on_loopback_unless_asked(
    arguments: list[str], shows_files: bool, parsl_db: Path, monkeypatch, capsys
):
    from taskscope.visualize import listen as listen_module
    from taskscope.visualize import serve as serve_module

    made = {}

    def fake_create_app(database, debug=False, show_files=True, token=None, **kwargs):
        made["show_files"] = show_files
        return object()

    monkeypatch.setattr(app_module, "create_app", fake_create_app)
    monkeypatch.setattr(serve_module, "serve", lambda app, **kwargs: None)
    # No real port (10.1.2.3 is not this machine's, 8080 may be taken on a shared host).
    monkeypatch.setattr(listen_module, "bind_listener", lambda host, port: _loopback_socket())
    assert main([str(parsl_db), *arguments]) == 0
    assert made["show_files"] is shows_files
    err = capsys.readouterr().err
    assert ("--show-files" in err) is not shows_files


def test_token_file_gives_the_printed_url_its_token(
    tmp_path: Path, parsl_db: Path, monkeypatch, capsys
):
    from taskscope.visualize import serve as serve_module

    monkeypatch.setattr(serve_module, "serve", lambda app, **kwargs: None)
    token_file = tmp_path / "token"
    assert main([str(parsl_db), "--port", "0", "--token-file", str(token_file)]) == 0
    assert f"?token={token_file.read_text().strip()}" in capsys.readouterr().out
    token_file.chmod(0o644)
    assert main([str(parsl_db), "--port", "0", "--token-file", str(token_file)]) == 1
    assert "chmod 600" in capsys.readouterr().err
    assert main([str(parsl_db), "--no-token", "--token-file", str(token_file)]) == 2
