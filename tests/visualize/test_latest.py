"""The newest analysis of a run is served at once while a fresher one is made in the
background (visualize/latest.py): a live run's page never waits for a recomputation, and
concurrent viewers never compute the same thing twice."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from dashboard_parts import wait_until

from taskscope.visualize import latest
from taskscope.visualize.latest import LatestResults


class FakeSource:
    """A database whose signature the test moves, read through a counted action."""

    path = Path("/nonexistent/small.db")  # no file: never big enough to be read apart

    def __init__(self) -> None:
        self.version = 1
        self.reads = 0

    def signature(self):
        return (self.version,)

    def read(self, action, deadline_s=None):
        self.reads += 1
        return action(None)


@pytest.fixture(autouse=True)
def refresh_at_once(monkeypatch):
    monkeypatch.setattr(latest, "REFRESH_MIN_S", 0.0)


def test_a_result_is_computed_once_while_the_database_does_not_change():
    source = FakeSource()
    results = LatestResults(source)
    first = results.get("k", lambda conn: "v1")
    again = results.get("k", lambda conn: "never")
    assert (first.value, first.stale, again.value, again.stale) == ("v1", False, "v1", False)
    assert source.reads == 1


def test_a_changed_database_gets_the_last_result_at_once_and_a_fresher_one_next():
    source = FakeSource()
    results = LatestResults(source)
    results.get("k", lambda conn: "v1")
    source.version = 2  # the writer committed
    release = threading.Event()

    def slow(conn):
        release.wait(5)
        return "v2"

    started = time.monotonic()
    stale = results.get("k", slow)
    assert time.monotonic() - started < 1.0  # did not wait for the recomputation
    assert (stale.value, stale.stale) == ("v1", True)
    assert results.get("k", slow).value == "v1"  # still computing: one refresh, not two
    release.set()
    assert wait_until(lambda: results.get("k", slow).value == "v2")
    fresh = results.get("k", slow)
    assert (fresh.value, fresh.stale) == ("v2", False)
    assert source.reads == 2


def test_refreshes_are_spaced_by_what_the_last_one_cost(monkeypatch):
    monkeypatch.setattr(latest, "REFRESH_MIN_S", 3600.0)
    source = FakeSource()
    results = LatestResults(source)
    results.get("k", lambda conn: "v1")
    source.version = 2
    stale = results.get("k", lambda conn: "v2")
    assert (stale.value, stale.stale) == ("v1", True)
    time.sleep(0.1)
    assert source.reads == 1  # not due yet: no refresh started


def test_concurrent_first_requests_share_one_computation():
    source = FakeSource()
    results = LatestResults(source)
    release = threading.Event()

    def slow(conn):
        release.wait(5)
        return "v1"

    answers: list[str] = []
    threads = [
        threading.Thread(target=lambda: answers.append(results.get("k", slow).value))
        for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    time.sleep(0.2)
    release.set()
    for thread in threads:
        thread.join(5)
    assert answers == ["v1"] * 4
    assert source.reads == 1


def test_a_first_computation_that_fails_fails_until_the_database_changes():
    source = FakeSource()
    results = LatestResults(source)

    def missing(conn):
        raise LookupError("no such run")

    with pytest.raises(LookupError):
        results.get("k", missing)
    with pytest.raises(LookupError):  # the same database: the same answer, not a new read
        results.get("k", lambda conn: "v1")
    assert source.reads == 1
    source.version = 2
    assert results.get("k", lambda conn: "v1").value == "v1"


def test_the_analysis_of_a_live_run_that_moved_on_says_when_it_was_made(tmp_path):
    import sqlite3

    from starlette.testclient import TestClient

    from taskscope.store.synthetic import create_database, standard_runs
    from taskscope.visualize.app import create_app

    db = create_database(tmp_path / "monitoring.db", standard_runs())
    client = TestClient(create_app(db))
    url = "/workflow/run-live/?part=analysis"
    first = client.get(url)
    assert first.status_code == 200 and "Analysis as of" not in first.text
    conn = sqlite3.connect(db)  # the run's writer commits a heartbeat
    conn.execute(
        "UPDATE taskscope_run SET last_heartbeat = last_heartbeat WHERE run_id = 'run-live'"
    )
    conn.execute(
        "INSERT INTO block VALUES ('run-live', 'htex', '1', 'j', '2030-01-01 00:00:00', 'PENDING')"
    )
    conn.commit()
    conn.close()
    moved_on = client.get(url)
    assert moved_on.status_code == 200
    assert "Analysis as of" in moved_on.text and "UTC; the run has moved on" in moved_on.text


def test_a_first_computation_longer_than_the_wait_goes_on_in_the_background():
    source = FakeSource()
    results = LatestResults(source)
    release = threading.Event()

    def slow(conn):
        release.wait(5)
        return "v1"

    assert results.get("k", slow, wait_s=0.05) is None  # not ready: ask again later
    assert results.get("k", slow, wait_s=0.05) is None  # the same computation, still going
    release.set()
    assert wait_until(lambda: results.get("k", slow, wait_s=0.05) is not None)
    assert source.reads == 1


def test_the_analysis_part_of_a_big_run_answers_at_once_and_is_asked_again(tmp_path, monkeypatch):
    from starlette.testclient import TestClient

    from taskscope.store.synthetic import create_database, standard_runs
    from taskscope.visualize import analysis_view
    from taskscope.visualize.app import create_app

    real = analysis_view.analyze

    def slow_analyze(conn, run_id, **kwargs):  # what tens of seconds at 10^6 tasks look like
        time.sleep(1.5)
        return real(conn, run_id, **kwargs)

    monkeypatch.setattr(analysis_view, "analyze", slow_analyze)
    db = create_database(tmp_path / "monitoring.db", standard_runs())
    client = TestClient(create_app(db))
    url = "/workflow/run-failed/?part=analysis&format=json"
    started = time.monotonic()
    first = client.get(url)
    assert time.monotonic() - started < 1.0
    assert first.status_code == 200 and first.json()["retry_after"] == analysis_view.PART_RETRY_S
    assert "is being computed" in first.json()["sections"]["part_analysis"]
    assert wait_until(lambda: "retry_after" not in client.get(url).json(), timeout=30)
    assert "Why tasks failed" in client.get(url).json()["sections"]["part_analysis"]


def test_the_analysis_page_of_a_big_run_answers_at_once_and_refreshes_itself(tmp_path, monkeypatch):
    from starlette.testclient import TestClient

    from taskscope.store.synthetic import create_database, standard_runs
    from taskscope.visualize import analysis_view
    from taskscope.visualize.app import create_app

    real = analysis_view.analyze

    def slow_analyze(conn, run_id, **kwargs):
        time.sleep(1.5)
        return real(conn, run_id, **kwargs)

    monkeypatch.setattr(analysis_view, "analyze", slow_analyze)
    db = create_database(tmp_path / "monitoring.db", standard_runs())
    client = TestClient(create_app(db))
    started = time.monotonic()
    first = client.get("/workflow/run-failed/analysis")
    assert time.monotonic() - started < 1.0
    assert first.status_code == 200 and "is being computed" in first.text
    assert 'data-live="1"' in first.text  # the page refreshes itself until it is there
    assert wait_until(
        lambda: "Failure groups" in client.get("/workflow/run-failed/analysis").text, timeout=30
    )
    done = client.get("/workflow/run-failed/analysis").text
    assert "is being computed" not in done and 'data-live="0"' in done


def test_the_comparison_of_big_runs_answers_at_once_and_refreshes_itself(tmp_path, monkeypatch):
    from starlette.testclient import TestClient

    from taskscope.store.synthetic import create_database, standard_runs
    from taskscope.visualize import analysis_view
    from taskscope.visualize.app import create_app

    real = analysis_view.run_diff

    def slow_diff(conn, run_a, run_b):
        time.sleep(1.5)
        return real(conn, run_a, run_b)

    monkeypatch.setattr(analysis_view, "run_diff", slow_diff)
    db = create_database(tmp_path / "monitoring.db", standard_runs())
    client = TestClient(create_app(db))
    url = "/workflow/run-failed/diff?against=run-completed"
    first = client.get(url)
    assert first.status_code == 200 and "is being computed" in first.text
    assert 'data-live="1"' in first.text
    section = client.get(url + "&format=json").json()["sections"]["diff_body"]
    assert "is being computed" in section  # what the page's refresh replaces its body with
    assert wait_until(lambda: "regression" in client.get(url).text, timeout=30)
    assert 'data-live="0"' in client.get(url).text


def test_remembered_failures_are_bounded_however_many_keys_arrive():
    """Every run id in a URL is a key, and a mistyped or hostile one fails: the record of
    failures keeps the newest few, not one per URL ever asked."""
    source = FakeSource()
    results = LatestResults(source, entries=4)

    def missing(conn):
        raise LookupError("no such run")

    for n in range(100):
        with pytest.raises(LookupError):
            results.get(("analysis", f"run-{n}"), missing)
    assert len(results._failed) == 4
