"""Our monitoring database's column formats, checked against a database written by Parsl.

Parsl's dashboard (``parsl-visualize``) and any tool written for Parsl's schema read these
columns as Parsl writes them, so a taskscope database must use the same text formats: the
fixture ``parsl-sample-small.db`` (written by Parsl's MonitoringHub) is the reference. One small
monitored workflow is run once for the module; Parsl itself is never run here.
"""

from __future__ import annotations

import os
import re
import sqlite3
from datetime import datetime
from pathlib import Path

import pytest
from fixture_paths import PARSL_FIXTURE_DB

import taskscope
from taskscope import bash_app, join_app, python_app
from taskscope.config import Config
from taskscope.executors import HighThroughputExecutor
from taskscope.monitoring.monitoring import MonitoringHub

PARSL_FIXTURE = PARSL_FIXTURE_DB
PARSL_TIME_FORMAT = "%Y-%m-%d %H:%M:%S.%f"  # what SQLAlchemy writes and Parsl's readers parse
ID_LIST = re.compile(r"^\d+(,\d+)*$")  # Parsl's "270,271": comma-joined task ids, no spaces
PARSL_STATES = {
    "pending",
    "running",
    "exec_done",
    "failed",
    "dep_fail",
    "launched",
    "fail_retryable",
    "memo_done",
    "joining",
    "running_ended",
}
DATETIME_COLUMNS = {
    "workflow": ("time_began", "time_completed"),
    "task": ("task_time_invoked", "task_time_returned"),
    "try": ("task_try_time_launched", "task_try_time_running", "task_try_time_returned"),
    "status": ("timestamp",),
    "resource": ("timestamp",),
    "node": ("timestamp", "last_heartbeat"),
    "block": ("timestamp",),
}

pytestmark = pytest.mark.skipif(not PARSL_FIXTURE.exists(), reason="Parsl fixture DB not found")


@python_app
def number(x: int) -> int:
    return x


@python_app
def add(a: int, b: int) -> int:
    return a + b


@python_app
def total(inputs=()) -> int:
    return sum(inputs)


@python_app
def fails_once(marker: str) -> str:
    if not os.path.exists(marker):
        open(marker, "w").close()
        raise KeyError("first try fails")
    return "second try"


@python_app
def always_fails() -> None:
    raise ValueError("never works")


@python_app
def after(x: object) -> object:
    return x


@python_app(cache=True)
def square(x: int) -> int:
    return x * x


@bash_app
def echo(stdout=None, stderr=None) -> str:
    return "echo hello"


@join_app
def fan(n: int):
    return [number(i) for i in range(n)]


class Recorded:
    """The one recorded run: its database and the task ids of the interesting tasks."""

    def __init__(self, path: Path, ids: dict[str, int]):
        self.path = path
        self.ids = ids

    def rows(self, sql: str, *args: object) -> list[tuple]:
        conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True)
        try:
            return conn.execute(sql, args).fetchall()
        finally:
            conn.close()

    def one(self, sql: str, *args: object) -> object:
        rows = self.rows(sql, *args)
        assert len(rows) == 1, rows
        return rows[0][0]


@pytest.fixture(scope="module")
def ours(tmp_path_factory) -> Recorded:
    tmp = tmp_path_factory.mktemp("parsl_format")
    db = tmp / "monitoring.db"
    hub = MonitoringHub(logging_endpoint=f"sqlite:///{db}", resource_monitoring_interval=0.2)
    config = Config(
        executors=[HighThroughputExecutor(label="htex", max_workers_per_node=2)],
        monitoring=hub,
        retries=1,
        run_dir=str(tmp / "runinfo"),
        strategy="none",
    )
    with taskscope.load(config):
        top = number(1)
        diamond = add(add(top, 1), add(top, 2))
        summed = total(inputs=[number(i) for i in range(3)])
        retried = fails_once(str(tmp / "marker"))
        doomed = always_fails()
        dependent = after(doomed)
        square(3).result()
        memo_hit = square(3)
        echoed = echo(stdout=str(tmp / "echo.out"), stderr=str(tmp / "echo.err"))
        joined = fan(3)
        for future in (diamond, summed, retried, memo_hit, echoed, joined):
            future.result()
        assert isinstance(dependent.exception(), Exception)
    ids = {
        "diamond": diamond.tid,
        "summed": summed.tid,
        "retried": retried.tid,
        "doomed": doomed.tid,
        "dependent": dependent.tid,
        "memo_hit": memo_hit.tid,
        "echoed": echoed.tid,
        "joined": joined.tid,
        "plain": top.tid,
    }
    return Recorded(db, ids)


@pytest.fixture(scope="module")
def parsl() -> Recorded:
    return Recorded(PARSL_FIXTURE, {})


def test_task_depends_is_a_comma_separated_id_list_like_parsls(ours, parsl):
    for db in (parsl, ours):
        values = [v for (v,) in db.rows("SELECT task_depends FROM task")]
        assert all(v == "" or v is None or ID_LIST.match(v) for v in values), values
    # An independent task has an empty list, as in Parsl's rows.
    assert parsl.rows("SELECT count(*) FROM task WHERE task_depends = ''")[0][0] > 0
    assert ours.one("SELECT task_depends FROM task WHERE task_id = ?", ours.ids["plain"]) in (
        "",
        None,
    )
    joined_deps = ours.one("SELECT task_depends FROM task WHERE task_id = ?", ours.ids["diamond"])
    assert ID_LIST.match(joined_deps) and len(joined_deps.split(",")) == 2


def test_try_task_joins_is_a_comma_separated_id_list_like_parsls(ours, parsl):
    parsl_joins = [v for (v,) in parsl.rows("SELECT task_joins FROM try WHERE task_joins != ''")]
    assert parsl_joins and all(ID_LIST.match(v) for v in parsl_joins)
    joins = ours.one(
        "SELECT task_joins FROM try WHERE task_id = ? AND task_joins IS NOT NULL",
        ours.ids["joined"],
    )
    assert ID_LIST.match(joins), joins
    assert len(joins.split(",")) == 3


def test_task_memoize_values_are_parsls(ours, parsl):
    parsl_values = {v for (v,) in parsl.rows("SELECT DISTINCT task_memoize FROM task")}
    our_values = {v for (v,) in ours.rows("SELECT DISTINCT task_memoize FROM task")}
    assert our_values <= parsl_values == {"0", "1"}
    assert ours.one("SELECT task_memoize FROM task WHERE task_id = ?", ours.ids["memo_hit"]) == "1"


def test_every_timestamp_parses_with_parsls_format(ours, parsl):
    for db in (parsl, ours):
        for table, columns in DATETIME_COLUMNS.items():
            for column in columns:
                values = db.rows(f"SELECT {column} FROM {table} WHERE {column} IS NOT NULL")
                for (value,) in values:
                    datetime.strptime(value, PARSL_TIME_FORMAT)  # raises on a foreign format
    assert ours.rows("SELECT count(*) FROM resource")[0][0] > 0


def test_status_names_and_executor_labels_are_parsls(ours):
    names = {v for (v,) in ours.rows("SELECT DISTINCT task_status_name FROM status")}
    assert names <= PARSL_STATES
    assert {
        "pending",
        "launched",
        "running",
        "running_ended",
        "exec_done",
        "fail_retryable",
        "failed",
        "dep_fail",
        "memo_done",
        "joining",
    } <= names
    executors = {v for (v,) in ours.rows("SELECT DISTINCT task_executor FROM try")}
    assert "htex" in executors and None not in executors and "" not in executors
    # Tries that ran on a worker know its host and block, as Parsl's do with resource monitoring.
    assert ours.rows(
        "SELECT count(*) FROM try WHERE task_executor = 'htex' AND task_try_time_running IS NOT "
        "NULL "
        "AND (hostname IS NULL OR block_id IS NULL)"
    ) == [(0,)]


def test_node_rows_have_what_parsls_capacity_plots_sum(ours):
    rows = ours.rows("SELECT cpu_count, total_memory, worker_count, uid, block_id FROM node")
    assert rows
    assert all(
        cpu > 0 and memory > 0 and workers > 0 and uid for cpu, memory, workers, uid, _ in rows
    )


def test_task_inputs_and_outputs_are_parsls_str_of_the_list(ours, parsl):
    assert parsl.rows("SELECT DISTINCT task_inputs, task_outputs FROM task") == [("None", "None")]
    assert ours.rows(
        "SELECT task_inputs, task_outputs FROM task WHERE task_id = ?", ours.ids["plain"]
    ) == [("None", "None")]
    assert ours.one("SELECT task_inputs FROM task WHERE task_id = ?", ours.ids["summed"]) == (
        "[0, 1, 2]"
    )


def test_task_stdout_stderr_are_empty_text_when_absent(ours, parsl):
    assert parsl.rows("SELECT count(*) FROM task WHERE task_stdout IS NULL") == [(0,)]
    assert parsl.rows("SELECT count(*) FROM task WHERE task_stdout = ''")[0][0] > 0
    assert ours.one("SELECT task_stdout FROM task WHERE task_id = ?", ours.ids["echoed"]).endswith(
        "echo.out"
    )
    assert ours.rows(
        "SELECT task_stdout, task_stderr FROM task WHERE task_id = ?", ours.ids["plain"]
    ) == [("", "")]


def test_try_fail_history_holds_only_that_tries_failure(ours, parsl):
    # Parsl: the retried task's second, successful try has an empty history.
    parsl_ok_retries = parsl.rows(
        "SELECT y.task_fail_history FROM try y JOIN status s ON s.task_id = y.task_id "
        "AND s.run_id = y.run_id AND s.try_id = y.try_id AND s.task_status_name = 'exec_done' "
        "WHERE y.try_id > 0"
    )
    assert parsl_ok_retries and all(h == "" for (h,) in parsl_ok_retries)
    histories = ours.rows(
        "SELECT try_id, task_fail_history FROM try WHERE task_id = ? ORDER BY try_id",
        ours.ids["retried"],
    )
    assert [h or "" for _, h in histories] == ["KeyError('first try fails')", ""]
    doomed = ours.rows(
        "SELECT task_fail_history FROM try WHERE task_id = ? ORDER BY try_id", ours.ids["doomed"]
    )
    assert [h.count("ValueError") for (h,) in doomed] == [1, 1]


def test_workflow_counts_are_parsls(ours, parsl):
    def final_counts(db: Recorded) -> dict[str, int]:
        rows = db.rows(
            "SELECT s.task_status_name, count(*) FROM status s WHERE s.timestamp = "
            "(SELECT max(timestamp) FROM status z WHERE z.run_id = s.run_id AND z.task_id = "
            "s.task_id) "
            "GROUP BY 1"
        )
        return dict(rows)

    for db in (parsl, ours):
        finals = final_counts(db)
        assert db.rows("SELECT tasks_completed_count, tasks_failed_count FROM workflow") == [
            (finals.get("exec_done", 0), finals.get("failed", 0))
        ]
