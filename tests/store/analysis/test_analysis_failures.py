"""Failure groups on a real run with planted failures, and on Parsl's database."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from fixture_paths import PARSL_FIXTURE_DB, PARSL_RUN

from taskscope.store.analysis.context import run_context
from taskscope.store.analysis.failures import failure_groups
from taskscope.store.analysis.signature import mask_message, parse_exception_repr, user_frame
from taskscope.store.readonly import open_readonly

pytestmark = pytest.mark.timeout(600)


def _groups(path, run_id):
    conn = open_readonly(path)
    try:
        return failure_groups(run_context(conn, run_id))
    finally:
        conn.close()


def _by_app(groups):
    found = {}
    for group in groups:
        for app in group.apps:
            assert app not in found, f"{app} is in two groups: {found[app].signature}, {group.signature}"
            found[app] = group
    return found


def test_every_planted_failure_is_one_group_with_its_cause(planted):
    groups = [g for g in _groups(planted.path, planted.first_run)]
    by_app = _by_app(groups)
    assert set(by_app) == {"lookup", "load_table", "score", "archive", "compress", "crash",
                           "slow_io", "flaky"}
    assert len(groups) == 8
    expected = {
        "lookup": ("exception", 5, 10),  # 5 tasks, each tried twice (retries=1)
        "load_table": ("exception", 4, 8),
        "archive": ("bash exit code 3", 3, 6),
        "compress": ("bash exit code 7", 1, 2),
        "crash": ("worker lost", 1, 2),
        "slow_io": ("walltime", 1, 2),
        "flaky": ("exception", 2, 2),
        "score": ("dependency", 3, 3),  # tasks that did not run
    }
    for app, (cause, tasks, count) in expected.items():
        group = by_app[app]
        assert (group.cause, len(group.tasks), group.count) == (cause, tasks, count), app
    # The frame: the app's function in the workflow's file (the kernel restores the file name
    # cloudpickle replaced with <dynamic-code>).
    assert by_app["lookup"].signature == "KeyError: <str> @ lookup (planted_workflow.py)"
    assert by_app["load_table"].signature.startswith(
        "ValueError: cannot parse <path>: <n> bytes, checksum <hex> @ load_table")
    # The dependency group names the group its tasks' failed ancestor is in.
    assert by_app["score"].ancestor == by_app["lookup"].signature
    # Retried then succeeded against permanent.
    assert (by_app["flaky"].retried_then_succeeded, by_app["flaky"].permanent) == (2, 0)
    assert (by_app["lookup"].retried_then_succeeded, by_app["lookup"].permanent) == (0, 5)
    # Root causes come before the dependency failures they cause.
    assert groups[-1].cause == "dependency"


def test_groups_carry_an_example_with_traceback_and_stderr_tail(planted):
    by_app = _by_app(_groups(planted.path, planted.first_run))
    lookup = by_app["lookup"].example
    assert lookup.traceback and "KeyError: 'sample-" in lookup.traceback
    archive = by_app["archive"].example
    assert archive.stderr_tail and archive.stderr_tail[-1].startswith("tar: part")
    assert by_app["lookup"].first <= by_app["lookup"].last
    # Every try that recorded its host ran on this machine's one host.
    assert [h.name for h in by_app["lookup"].hosts] == [by_app["flaky"].hosts[0].name]
    assert 0 < by_app["lookup"].hosts[0].tries <= 10
    # One host in the run: no concentration claim.
    assert by_app["lookup"].concentration is None


def test_second_run_marks_groups_new_recurring_and_gone(planted):
    groups = _groups(planted.path, planted.second_run)
    history = {}
    for group in groups:
        for app in group.apps:
            history[app] = group.history
    assert history["divide"] == "new"
    assert history["compress"] == "gone"
    for app in ("lookup", "load_table", "archive", "crash", "slow_io", "flaky", "score"):
        assert history[app] == "recurring", app
    gone = [g for g in groups if g.history == "gone"]
    assert [g.previous_count for g in gone] == [2] and gone[0].count == 0
    assert all(g.since_run == planted.first_run for g in groups)


def test_first_run_has_no_history(planted):
    assert all(g.history is None for g in _groups(planted.path, planted.first_run))


def test_parsl_database_failures_come_from_fail_history():
    groups = _groups(PARSL_FIXTURE_DB, PARSL_RUN)
    signatures = {g.signature: g for g in groups}
    failing = signatures["ValueError: deliberate failure for input <n> @ always_fail"]
    assert (failing.cause, failing.tasks, failing.count, failing.permanent) == (
        "exception", [1, 66, 129, 193], 12, 4)
    flaky = signatures["RuntimeError: flaky task <n>: first try fails @ flaky"]
    assert (len(flaky.tasks), flaky.retried_then_succeeded, flaky.permanent) == (9, 9, 0)
    dependency = [g for g in groups if g.cause == "dependency"]
    assert len(dependency) == 1 and dependency[0].ancestor == failing.signature
    assert dependency[0].tasks == [3, 4, 68, 131, 132, 195]


def test_masking_and_frames():
    assert mask_message("no file '/a/b c.txt' (errno 2) at 0xdeadbeef") == (
        "no file <str> (errno <n>) at <hex>")
    assert mask_message("cannot open /scratch/u1/run17/x_3.h5 for 85029df9-5f8e-4ab7-810a-"
                        "f8db9f552f59") == "cannot open <path> for <uuid>"
    assert parse_exception_repr("KeyError('x-1')").message == "x-1"
    traceback = (
        'Traceback (most recent call last):\n'
        '  File "/opt/venv/lib/python3.11/site-packages/taskscope/worker.py", line 9, in run\n'
        '  File "/home/me/flow.py", line 30, in simulate\n'
        '  File "/home/me/physics.py", line 12, in step\n'
        '  File "/opt/venv/lib/python3.11/site-packages/numpy/core.py", line 99, in dot\n'
        'ValueError: shapes not aligned\n'
    )
    frame = user_frame(traceback)
    assert (frame.file, frame.line, frame.function) == ("/home/me/physics.py", 12, "step")


def test_analyze_command_prints_json_with_failures(planted):
    result = subprocess.run(
        [sys.executable, "-m", "taskscope.cli", "analyze", str(planted.path), "--run",
         planted.first_run[:8], "--json"],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["run_id"] == planted.first_run
    assert len(document["failures"]) == 8
    text = subprocess.run(
        [sys.executable, "-m", "taskscope.cli", "analyze", str(planted.path)],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert text.returncode == 0 and "ZeroDivisionError" in text.stdout  # latest run by default
    missing = subprocess.run(
        [sys.executable, "-m", "taskscope.cli", "analyze", str(planted.path), "--run", "nope"],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert missing.returncode == 1 and "no run 'nope'" in missing.stderr
