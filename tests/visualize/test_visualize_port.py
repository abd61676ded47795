"""`taskscope-visualize --port`: a taken port fails before any address is printed; port 0
picks a free port and prints it."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

from taskscope.visualize.cli import main


def test_port_in_use_fails_before_printing_an_address(parsl_db: Path, capsys) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        code = main([str(parsl_db), "--port", str(port)])
    out, err = capsys.readouterr()
    assert code == 1
    assert "http://" not in out + err
    assert f"port {port}" in err and "--port 0" in err


def test_port_zero_picks_a_free_port_and_prints_it(parsl_db: Path) -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "taskscope.visualize.cli",
            str(parsl_db),
            "--no-token",
            "--port",
            "0",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None
        url = None
        for line in proc.stdout:
            found = re.search(r"open (http://\S+)", line)
            if found:
                url = found.group(1)
                break
        assert url is not None, "no address printed"
        port = int(re.search(r":(\d+)/", url).group(1))
        assert port != 0
        with urllib.request.urlopen(url, timeout=20) as response:
            assert response.status == 200 and "diamond-sample" in response.read().decode()
    finally:
        proc.terminate()
        proc.communicate(timeout=15)
