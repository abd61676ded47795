"""A deferred part answers within its wait however long its read takes
(visualize/slow_parts.py): a first view says the part is being computed and asks again, the
read goes on in the background into the dashboard's cache, and a database that has moved on
gets the part's last figures while a fresher read goes on."""

from __future__ import annotations

import os
import sqlite3
import threading
import time

import pytest
from dashboard_parts import wait_until
from starlette.exceptions import HTTPException

from taskscope.visualize.slow_parts import SlowParts
from taskscope.visualize.source import DatabaseSource


@pytest.fixture
def source(tmp_path):
    path = tmp_path / "m.db"
    sqlite3.connect(path).execute("CREATE TABLE t (x)").connection.close()
    return DatabaseSource(path)


def _touch(source: DatabaseSource) -> None:
    """The writer committed: the file's signature moves on."""
    stat = os.stat(source.path)
    os.utime(source.path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))


def test_a_slow_first_read_answers_pending_and_then_from_the_cache(source):
    parts = SlowParts(source)
    release, reads = threading.Event(), []

    def slow(conn):
        reads.append(1)
        release.wait(5)
        return {"figure": 1}

    first = parts.get(("k",), slow, wait_s=0.05)
    assert (first.value, first.fresh) == (None, False)
    again = parts.get(("k",), slow, wait_s=0.05)  # joins the read under way
    assert again.value is None
    release.set()
    assert wait_until(lambda: parts.get(("k",), slow, wait_s=0.05).fresh)
    assert parts.get(("k",), slow).value == {"figure": 1}
    assert len(reads) == 1


def test_a_quick_read_is_answered_fresh_in_the_same_request(source):
    parts = SlowParts(source)
    answer = parts.get(("k",), lambda conn: "v1")
    assert (answer.value, answer.fresh) == ("v1", True)
    _touch(source)
    answer = parts.get(("k",), lambda conn: "v2")
    assert (answer.value, answer.fresh) == ("v2", True)


def test_a_changed_database_gets_the_last_figures_while_a_fresher_read_goes_on(source):
    parts = SlowParts(source)
    assert parts.get(("k",), lambda conn: "v1").value == "v1"
    _touch(source)
    release = threading.Event()

    def slow(conn):
        release.wait(5)
        return "v2"

    stale = parts.get(("k",), slow, wait_s=0.05)
    assert (stale.value, stale.fresh) == ("v1", False)
    release.set()
    assert wait_until(lambda: parts.get(("k",), slow, wait_s=0.05).value == "v2")


def test_an_error_reaches_the_request_whether_or_not_it_waited(source):
    parts = SlowParts(source)

    def missing(conn):
        raise HTTPException(404, "no such run")

    with pytest.raises(HTTPException):
        parts.get(("gone",), missing)
    release = threading.Event()

    def late(conn):
        release.wait(5)
        raise HTTPException(404, "no such run")

    assert parts.get(("late",), late, wait_s=0.05).value is None
    release.set()
    assert wait_until(lambda: not parts._running)
    with pytest.raises(HTTPException):
        parts.get(("late",), late, wait_s=0.05)


def test_a_slow_part_of_the_dashboard_says_so_and_is_asked_again(tmp_path, monkeypatch):
    from starlette.testclient import TestClient

    from taskscope.store import query
    from taskscope.store.synthetic import create_database, standard_runs
    from taskscope.visualize.app import create_app

    real = query.state_counts

    def slow_counts(conn, run_id, *args, **kwargs):  # a big Parsl run's status history
        time.sleep(1.0)
        return real(conn, run_id, *args, **kwargs)

    monkeypatch.setattr(query, "state_counts", slow_counts)
    db = create_database(tmp_path / "monitoring.db", standard_runs())
    client = TestClient(create_app(db))
    url = "/workflow/run-failed/?part=states&format=json"
    started = time.monotonic()
    first = client.get(url).json()
    assert time.monotonic() - started < 0.9
    assert first["retry_after"] > 0
    assert "is being computed" in first["sections"]["part_states"]
    assert wait_until(lambda: "retry_after" not in client.get(url).json(), timeout=30)
    html = client.get(url).json()["sections"]["part_states"]
    counts = real(query.open_readonly(db), "run-failed")
    assert all(f"{n:,}" in html for n in counts.values()) and "exec_done" in html
