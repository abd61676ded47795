"""`taskscope top`: one frame with the database's figures (--once), and a live view that
redraws in place until Ctrl-C."""

from __future__ import annotations

import io
import re
import sqlite3
import sys
import threading
import time
from pathlib import Path

import pytest
from fixture_paths import PARSL_FIXTURE_DB, PARSL_RUN

from taskscope.cli import main
from taskscope.commands import top

rich_console = pytest.importorskip("rich.console")


def once(db: Path, *args: str, capsys) -> str:
    assert main(["top", str(db), *args, "--once"]) == 0
    return capsys.readouterr().out


def cell(text: str, label: str) -> str:
    match = re.search(rf"│ {re.escape(label)}\s+│\s+([^│]+?)\s+│", text)
    assert match, label
    return match.group(1)


def test_one_frame_of_a_live_run(taskscope_db: Path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "160")
    out = once(taskscope_db, "--run", "run-live", capsys=capsys)
    conn = sqlite3.connect(taskscope_db)
    states = dict(
        conn.execute(
            "SELECT state, COUNT(*) FROM taskscope_task_state "
            "WHERE run_id = 'run-live' GROUP BY state"
        )
    )
    tasks = conn.execute("SELECT COUNT(*) FROM task WHERE run_id = 'run-live'").fetchone()[0]
    conn.close()
    states["pending"] = states.get("pending", 0) + tasks - sum(states.values())
    for state, count in states.items():
        assert cell(out, state) == f"{count:,}", state
    assert cell(out, "workers busy") == f"{states['running']} of 4"
    assert "Forecast:" in out and "Failure groups" in out
    assert "run run-live" in out and "running" in out and "heartbeat" in out


def test_one_frame_of_parsl_s_run(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "160")
    out = once(PARSL_FIXTURE_DB, "--run", PARSL_RUN[:6], capsys=capsys)
    assert cell(out, "failed") == "4" and cell(out, "exec_done") == "260"
    assert "275 of 275 tasks final" in out and "always_fail" in out
    assert "Forecast:" not in out  # a finished run has nothing to forecast


def test_live_view_redraws_in_place_until_ctrl_c(taskscope_db: Path, monkeypatch):
    from rich.live import Live

    screen = io.StringIO()
    monkeypatch.setattr(
        top,
        "_rich",
        lambda: (lambda: rich_console.Console(file=screen, force_terminal=True, width=140), Live),
    )
    naps = []
    real_sleep = time.sleep

    def sleep(seconds: float) -> None:
        # time.sleep is patched for the whole process: other threads (a resource sampler left
        # by an earlier test) must keep their own sleeps, or Ctrl-C lands in one of them.
        if threading.current_thread() is not threading.main_thread():
            real_sleep(seconds)
            return
        naps.append(seconds)
        if len(naps) == 3:
            raise KeyboardInterrupt

    monkeypatch.setattr(top.time, "sleep", sleep)
    assert main(["top", str(taskscope_db), "--run", "run-live", "--interval", "0.5"]) == 0
    assert naps == [0.5, 0.5, 0.5]
    drawn = screen.getvalue()
    assert drawn.count("taskscope top") >= 3  # the first frame and two refreshes
    assert "\x1b[1A" in drawn or "\x1b[A" in drawn  # the cursor moves up: drawn in place


def test_without_rich_the_error_says_what_to_install(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "rich.console", None)
    assert main(["top", str(PARSL_FIXTURE_DB), "--once"]) == 1
    assert "pip install 'taskscope[top]'" in capsys.readouterr().err


def test_bad_interval_and_unknown_run(capsys):
    assert main(["top", str(PARSL_FIXTURE_DB), "--interval", "0"]) == 2
    assert "--interval" in capsys.readouterr().err
    assert main(["top", str(PARSL_FIXTURE_DB), "--run", "zzz", "--once"]) == 1
    assert "no run 'zzz'" in capsys.readouterr().err
