"""Background reads of a big database run in a process of their own (visualize/apart.py):
the same answer, the same errors, and the server's own thread when no process can answer."""

from __future__ import annotations

import logging
import sqlite3
import subprocess
import sys
import time
from functools import partial
from operator import methodcaller

import pytest

from taskscope.store import query
from taskscope.store.analysis.context import RunNotFound
from taskscope.store.analysis.report import analyze
from taskscope.visualize import apart
from taskscope.visualize.latest import LatestResults
from taskscope.visualize.source import DatabaseSource

PARSL_RUN = "85029df9-5f8e-4ab7-810a-f8db9f552f59"


@pytest.fixture
def processes(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """Every database counts as big; the commands of the processes started are kept."""
    monkeypatch.setattr(apart, "APART_ABOVE_BYTES", -1)
    started: list[list[str]] = []
    real_run = subprocess.run

    def run(command, **kw):
        started.append(command)
        return real_run(command, **kw)

    monkeypatch.setattr(apart.subprocess, "run", run)
    return started


def wait_for(results: LatestResults, key, action):
    deadline = time.monotonic() + 60
    while (latest := results.get(key, action, wait_s=0.5)) is None:
        assert time.monotonic() < deadline, "the background read never finished"
    return latest.value


def test_the_analysis_computed_apart_is_the_one_computed_here(parsl_db, processes):
    action = partial(analyze, run_id=PARSL_RUN, read_files=False)
    here = DatabaseSource(parsl_db).read(action)
    assert wait_for(LatestResults(DatabaseSource(parsl_db)), "a", action) == here
    assert len(processes) == 1 and processes[0][1:] == ["-m", "taskscope.visualize.apart"]


def test_errors_raised_apart_are_raised_here(parsl_db, processes):
    with pytest.raises(RunNotFound):
        apart.read_apart(parsl_db, partial(analyze, run_id="no-such-run"), 60.0)
    with pytest.raises(sqlite3.OperationalError, match="no such table"):
        apart.read_apart(parsl_db, methodcaller("execute", "SELECT * FROM no_such_table"), 60.0)
    assert len(processes) == 2


def test_without_a_process_the_server_reads_it_itself(parsl_db, processes, monkeypatch, caplog):
    monkeypatch.setattr(sys, "executable", "/bin/false")  # a child that answers nothing
    action = partial(query.get_run, run_id=PARSL_RUN)
    with caplog.at_level(logging.WARNING, logger="taskscope.visualize.latest"):
        run = wait_for(LatestResults(DatabaseSource(parsl_db)), "run", action)
    assert run == DatabaseSource(parsl_db).read(action) and run.run_id == PARSL_RUN
    assert len(processes) == 1 and "without an answer" in caplog.text


def test_a_closure_is_read_in_the_server(parsl_db, processes):
    value = wait_for(LatestResults(DatabaseSource(parsl_db)), "c", lambda conn: 42)
    assert value == 42 and processes == []


def test_only_big_databases_are_read_apart(parsl_db, tmp_path):
    assert not apart.worth_a_process(parsl_db)  # Parsl's fixture: well under the bound
    big = tmp_path / "big.db"
    with open(big, "wb") as f:
        f.truncate(apart.APART_ABOVE_BYTES + 1)
    assert apart.worth_a_process(big) and not apart.worth_a_process(tmp_path / "none.db")
