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
            assert app not in found, (
                f"{app} is in two groups: {found[app].signature}, {group.signature}"
            )
            found[app] = group
    return found


def test_every_planted_failure_is_one_group_with_its_cause(planted):
    groups = list(_groups(planted.path, planted.first_run))
    by_app = _by_app(groups)
    assert set(by_app) == {
        "lookup",
        "load_table",
        "score",
        "archive",
        "compress",
        "crash",
        "slow_io",
        "flaky",
        "unpicklable",
    }
    assert len(groups) == 9
    expected = {
        "lookup": ("exception", 5, 10),  # 5 tasks, each tried twice (retries=1)
        "load_table": ("exception", 4, 8),
        "archive": ("bash exit code 3", 3, 6),
        "compress": ("bash exit code 7", 1, 2),
        "crash": ("worker lost", 1, 2),
        "slow_io": ("walltime", 1, 2),
        "flaky": ("exception", 2, 2),
        "unpicklable": ("serialization", 2, 4),
        "score": ("dependency", 3, 3),  # tasks that did not run
    }
    for app, (cause, tasks, count) in expected.items():
        group = by_app[app]
        assert (group.cause, len(group.tasks), group.count) == (cause, tasks, count), app
    # The frame: the app's function in the workflow's file (the kernel restores the file name
    # cloudpickle replaced with <dynamic-code>).
    assert by_app["lookup"].signature == "KeyError: <str> @ lookup (planted_workflow.py)"
    assert by_app["load_table"].signature.startswith(
        "ValueError: cannot parse <path>: <n> bytes, checksum <hex> @ load_table"
    )
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
    # Every try that recorded its host ran on this machine's one host. (A try's host comes
    # from its worker; `crash` kills a worker, and the last frame of a try that worker ran
    # just before may die with it, so not every group need name a host.)
    names = {h.name for g in by_app.values() for h in g.hosts}
    assert len(names) == 1
    assert [h.name for h in by_app["lookup"].hosts] == sorted(names)
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
    for app in (
        "lookup",
        "load_table",
        "archive",
        "crash",
        "slow_io",
        "flaky",
        "score",
        "unpicklable",
    ):
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
        "exception",
        [1, 66, 129, 193],
        12,
        4,
    )
    flaky = signatures["RuntimeError: flaky task <n>: first try fails @ flaky"]
    assert (len(flaky.tasks), flaky.retried_then_succeeded, flaky.permanent) == (9, 9, 0)
    dependency = [g for g in groups if g.cause == "dependency"]
    assert len(dependency) == 1 and dependency[0].ancestor == failing.signature
    assert dependency[0].tasks == [3, 4, 68, 131, 132, 195]


def test_masking_and_frames():
    assert mask_message("no file '/a/b c.txt' (errno 2) at 0xdeadbeef") == (
        "no file <str> (errno <n>) at <hex>"
    )
    assert (
        mask_message(
            "cannot open /scratch/u1/run17/x_3.h5 for 85029df9-5f8e-4ab7-810a-f8db9f552f59"
        )
        == "cannot open <path> for <uuid>"
    )
    assert parse_exception_repr("KeyError('x-1')").message == "x-1"
    traceback = (
        "Traceback (most recent call last):\n"
        '  File "/opt/venv/lib/python3.11/site-packages/taskscope/worker.py", line 9, in run\n'
        '  File "/home/me/flow.py", line 30, in simulate\n'
        '  File "/home/me/physics.py", line 12, in step\n'
        '  File "/opt/venv/lib/python3.11/site-packages/numpy/core.py", line 99, in dot\n'
        "ValueError: shapes not aligned\n"
    )
    frame = user_frame(traceback)
    assert (frame.file, frame.line, frame.function) == ("/home/me/physics.py", 12, "step")


def test_analyze_command_prints_json_with_failures(planted):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "taskscope.cli",
            "analyze",
            str(planted.path),
            "--run",
            planted.first_run[:8],
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["run_id"] == planted.first_run
    assert len(document["failures"]) == 9
    text = subprocess.run(
        [sys.executable, "-m", "taskscope.cli", "analyze", str(planted.path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert text.returncode == 0 and "ZeroDivisionError" in text.stdout  # latest run by default
    missing = subprocess.run(
        [sys.executable, "-m", "taskscope.cli", "analyze", str(planted.path), "--run", "nope"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert missing.returncode == 1 and "no run 'nope'" in missing.stderr


def _crafted(tmp_path, name):
    """A synthetic run (one host, 4 workers with 4 GiB each) whose tries are turned into
    failures below."""
    from taskscope.store.synthetic import SyntheticRun, create_database

    return create_database(
        tmp_path / f"{name}.db",
        [SyntheticRun(name, tasks=200, workers=4, fail_fraction=0.0, retry_fraction=0.0, seed=4)],
    )


def test_killed_near_the_memory_limit_is_memory_and_killed_by_the_block_end_is_walltime(tmp_path):
    import sqlite3

    db = _crafted(tmp_path, "killed")
    conn = sqlite3.connect(db)
    tries = conn.execute(
        "SELECT task_id, task_try_time_running, task_try_time_returned FROM "
        "try WHERE run_id = 'killed' ORDER BY task_id LIMIT 40"
    ).fetchall()
    lost = "worker w on node0 was lost while running this task: killed by SIGKILL"
    for task_id, _, _ in tries[:30]:
        conn.execute(
            "INSERT INTO taskscope_try_failure VALUES ('killed', ?, 0, 'WorkerLost', "
            "?, NULL, NULL)",
            (task_id, lost),
        )
    # Tasks 0-9: their peak memory reached 3.6 of the 4 GiB each worker had.
    conn.execute(
        "UPDATE resource SET psutil_process_memory_resident = ? WHERE run_id = 'killed' "
        "AND task_id < 10",
        (3.6 * 2**30,),
    )
    # The try of the 21st task was running when its block ended.
    start = tries[20][1]
    conn.execute(
        "INSERT INTO block VALUES ('killed', 'htex', '0', 'local-1', ?, 'TIMEOUT')",
        (start[:-1] + "9",),
    )
    conn.commit()
    conn.close()
    groups = _groups(db, "killed")
    by_cause = {}
    for group in groups:
        by_cause.setdefault(group.cause, set()).update(group.tasks)
    memory_tasks = {t for t, _, _ in tries[:10]}
    assert by_cause["memory"] == memory_tasks
    walltime = by_cause["walltime"]
    assert tries[20][0] in walltime and not walltime & memory_tasks
    # Every other killed try: worker lost (the block ended after they returned).
    assert by_cause["worker lost"] == {t for t, _, _ in tries[:30]} - memory_tasks - walltime
    signature = next(g.signature for g in groups if g.cause == "worker lost")
    assert signature.startswith("WorkerLost: killed by SIGKILL")  # no worker id or host
    # The block's walltime advice: it lasted from RUNNING to TIMEOUT; one more p99 try fits.
    from taskscope.store.analysis.efficiency import app_efficiency
    from taskscope.store.timestamps import parse_timestamp

    reader = open_readonly(db)
    try:
        ctx = run_context(reader, "killed")
        advice = [
            a for a in app_efficiency(ctx, groups).advice if a.setting == "walltime (of the blocks)"
        ]
        running = reader.execute(
            "SELECT timestamp FROM block WHERE run_id = 'killed' AND status = 'RUNNING'"
        ).fetchone()[0]
        marks = ",".join("?" * len(walltime))
        apps = {
            row[0]
            for row in reader.execute(
                f"SELECT task_func_name FROM task WHERE run_id = 'killed' AND task_id IN ({marks})",
                sorted(walltime),
            )
        }
    finally:
        reader.close()
    lasted = round((parse_timestamp(start[:-1] + "9") - parse_timestamp(running)).total_seconds())
    assert {a.app for a in advice} == apps
    for a in advice:
        assert a.current == f"00:{lasted // 60:02d}:{lasted % 60:02d}"
        assert a.suggested > a.current and "outlived their block" in a.evidence


def test_no_failures_and_no_tasks_are_empty_not_errors(tmp_path, empty_db):
    import sqlite3

    db = _crafted(tmp_path, "clean")
    assert _groups(db, "clean") == []
    conn = sqlite3.connect(db)
    conn.execute(
        "INSERT INTO workflow VALUES ('bare', 'bare', '1', '2026-01-01 00:00:00', "
        "NULL, 'h', 'u', '/tmp', 0, 0)"
    )
    conn.commit()
    conn.close()
    from taskscope.store.analysis.report import analyze, as_json

    reader = open_readonly(db)
    try:
        document = as_json(analyze(reader, "bare"))
    finally:
        reader.close()
    assert document["failures"] == [] and document["stragglers"] == []
    assert document["critical_path"]["tasks"] == []
    result = subprocess.run(
        [sys.executable, "-m", "taskscope.cli", "analyze", str(empty_db)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 1 and "no runs" in result.stderr
    assert "Traceback" not in result.stderr


def _each_tries_own_group(path, run_id):
    """Task -> the group its failed try's own signature names (each task fails once here),
    checked against the task lists of failure_groups; returned for more checks."""
    from taskscope.store.analysis.failures import (
        _block_ends,
        _memory_per_worker,
        classify,
        failed_tries,
        try_signature,
    )

    groups = _groups(path, run_id)
    group_of = {t: g.key for g in groups if g.cause != "dependency" for t in g.tasks}
    reader = open_readonly(path)
    try:
        ctx = run_context(reader, run_id)
        memory, ends = _memory_per_worker(ctx), _block_ends(ctx)
        own = {}
        for attempt in failed_tries(ctx):
            cause = classify(attempt, memory, ends)
            if cause != "dependency":
                key = (cause, try_signature(attempt, cause)[0])
                assert own.setdefault(attempt.task_id, key) == key  # retries: the same group
    finally:
        reader.close()
    assert group_of == own
    return own


def test_parsl_databases_groups_are_each_tries_own_signature():
    """The same on Parsl's database (failures from try.task_fail_history, no traceback)."""
    own = _each_tries_own_group(PARSL_FIXTURE_DB, PARSL_RUN)
    assert len(own) >= 10 and len(set(own.values())) >= 2


def test_signatures_shared_by_shape_are_each_tries_own(tmp_path):
    """failure_groups computes a signature once per shape (cause, app, type, message and
    traceback with their digits zeroed): every try must still land in the group its own
    signature names. Planted: messages that differ only in their numbers (one group),
    user frames whose names differ only in a digit, types that differ only in a digit and
    bash exits whose code is only in the message (separate groups), lost workers."""
    import sqlite3

    db = _crafted(tmp_path, "shapes")
    conn = sqlite3.connect(db)
    task_ids = [
        row[0]
        for row in conn.execute(
            "SELECT task_id FROM try WHERE run_id = 'shapes' ORDER BY task_id LIMIT 60"
        )
    ]

    def frame(function: str) -> str:
        return (
            'Traceback (most recent call last):\n  File "/home/u/flow.py", line 1'
            f"2, in {function}\n    raise ValueError(x)\nValueError: x\n"
        )

    planted = []
    for i in range(len(task_ids)):
        kind = i % 6
        if kind == 0:  # one shape: only the number differs
            planted.append(("ValueError", f"bad row {i * 7}", frame("parse"), None))
        elif kind == 1:  # frame names that differ in a digit: two groups
            planted.append(("ValueError", f"bad row {i}", frame(f"step_{i // 6 % 2}"), None))
        elif kind == 2:  # types that differ in a digit: two groups
            planted.append((f"Error{i // 6 % 2}", "same text", frame("check"), None))
        elif kind == 3:  # the exit code only in the message: a cause per code
            planted.append(("BashExitFailure", f"exited with code {3 + i // 6 % 2}", None, None))
        elif kind == 4:
            lost = f"worker w{i} on node0 was lost while running this task: killed"
            planted.append(("WorkerLost", lost, None, None))
        else:  # digits in the traceback's file and line only: one shape with kind 0's
            planted.append(("ValueError", f"bad row {i}", frame("parse").replace("1", "9"), None))
    for task_id, (etype, message, traceback, code) in zip(task_ids, planted, strict=True):
        conn.execute(
            "INSERT INTO taskscope_try_failure VALUES ('shapes', ?, 0, ?, ?, ?, ?)",
            (task_id, etype, message, traceback, code),
        )
    conn.commit()
    conn.close()
    own = _each_tries_own_group(db, "shapes")
    keys = set(own.values())
    assert ("exception", "ValueError: bad row <n> @ step_0 (flow.py)") in keys
    assert ("exception", "ValueError: bad row <n> @ step_1 (flow.py)") in keys
    assert {k for k in keys if k[1].startswith("Error")} == {
        ("exception", "Error0: same text @ check (flow.py)"),
        ("exception", "Error1: same text @ check (flow.py)"),
    }
    assert {k[0] for k in keys if k[1].startswith("BashExitFailure")} == {
        "bash exit code 3",
        "bash exit code 4",
    }
    assert sum(1 for k in keys if k[1].startswith("ValueError: bad row <n> @ parse")) == 1
