"""Logging as Parsl programs and log processors expect it: task records with structured
attributes (taskscope.* and parsl.*), the task summary at cleanup, LogConfig plugins."""

from __future__ import annotations

import json
import logging
import pathlib

import pytest

import taskscope
from taskscope import python_app
from taskscope.config import Config
from taskscope.executors import ThreadPoolExecutor
from taskscope.logconfigs import FileLogging, JSONLogging, NoopLogging
from taskscope.logconfigs import base as logconfig_base


@python_app
def noop():
    return None


@python_app
def fail():
    raise RuntimeError("deliberate")


@python_app
def after(x):
    return x


def _records_with(caplog, key):
    return [r for r in caplog.records if key in r.__dict__]


def test_task_state_records_carry_task_and_state(load_config, caplog):
    caplog.set_level(logging.DEBUG, logger="taskscope")
    dfk = load_config()
    ok = noop()
    ok.result()
    bad = fail()
    bad.exception()
    after(bad).exception()
    states = {(r.__dict__["taskscope.task"], r.__dict__["taskscope.task_state"])
              for r in _records_with(caplog, "taskscope.task_state")}  # fmt: skip
    assert {(ok.tid, "pending"), (ok.tid, "launched"), (ok.tid, "exec_done")} <= states
    assert (bad.tid, "failed") in states
    for r in _records_with(caplog, "taskscope.task_state"):
        assert r.__dict__["parsl.task_state"] == r.__dict__["taskscope.task_state"]
        assert r.__dict__["parsl.task"] == r.__dict__["taskscope.task"]
        assert r.__dict__["taskscope.dfk"] == dfk.run_id
    assert f"Task {ok.tid} changing state from launched to exec_done" in caplog.text
    deps = _records_with(caplog, "taskscope.dependency_task")
    assert [r.__dict__["taskscope.dependency_task"] for r in deps] == [bad.tid]
    apps = {r.__dict__["parsl.app_name"] for r in _records_with(caplog, "parsl.app_name")}
    assert apps == {"noop", "fail", "after"}
    launches = _records_with(caplog, "taskscope.executor")
    assert {r.__dict__["taskscope.executor"] for r in launches} == {"threads"}


def test_no_task_records_at_info(load_config, caplog):
    caplog.set_level(logging.INFO, logger="taskscope")
    load_config()
    noop().result()
    assert not _records_with(caplog, "taskscope.task_state")


def test_cleanup_logs_the_summary_of_task_states(load_config, caplog):
    caplog.set_level(logging.INFO, logger="taskscope")
    dfk = load_config()
    noop().result()
    fail().exception()
    dfk.cleanup()
    assert "Summary of tasks in DFK:" in caplog.text
    assert "Tasks in state States.exec_done: 1" in caplog.text
    assert "Tasks in state States.failed: 1" in caplog.text
    assert "Tasks in state States.pending: 0" in caplog.text


def _run(tmp_path, initialize_logging) -> pathlib.Path:
    with taskscope.load(
        Config(
            executors=[ThreadPoolExecutor()],
            run_dir=str(tmp_path),
            initialize_logging=initialize_logging,
        )
    ) as dfk:
        noop().result()
        logging.getLogger("taskscope.compat").info(
            "with extra", extra={"parsl.somekey": "vv", "taskscope.other": 3}
        )
        return pathlib.Path(dfk.run_dir)  # read after the with block has cleaned up


def test_file_logging_writes_the_run_log_in_its_format(tmp_path):
    run_dir = _run(tmp_path, FileLogging(format_string="XXXYYY %(message)s"))
    text = (run_dir / "taskscope.log").read_text().splitlines()
    assert text and all(line.startswith("XXXYYY ") for line in text)
    assert "XXXYYY with extra" in text
    # DEBUG by default, as in Parsl: the task state lines are there.
    assert any("changing state from launched to exec_done" in line for line in text)


def test_json_logging_writes_one_object_a_line_with_the_attributes(tmp_path):
    run_dir = _run(tmp_path, JSONLogging())
    parsed = [json.loads(line) for line in (run_dir / "taskscope.jsonlog").read_text().splitlines()]
    extra = [p for p in parsed if p["msg"] == "with extra"]
    assert len(extra) == 1
    assert extra[0]["parsl.somekey"] == "vv" and extra[0]["taskscope.other"] == "3"
    states = [p for p in parsed if "taskscope.task_state" in p]
    assert {p["taskscope.task_state"] for p in states} >= {"pending", "launched", "exec_done"}


@pytest.mark.parametrize("setting", [False, "noop"])
def test_no_logging_writes_no_run_log(tmp_path, setting):
    run_dir = _run(tmp_path, NoopLogging() if setting == "noop" else setting)
    assert not (run_dir / "taskscope.log").exists()
    assert not (run_dir / "taskscope.jsonlog").exists()


def test_default_logging_writes_taskscope_log(tmp_path):
    run_dir = _run(tmp_path, True)
    text = (run_dir / "taskscope.log").read_text()
    assert "with extra" in text and "Summary of tasks in DFK:" in text


def test_a_log_config_is_set_up_once_and_torn_down_by_the_last_user(tmp_path):
    calls = []

    class Counting(logconfig_base.LogConfig):
        def initialize_logging(self, *, log_dir, log_name):
            calls.append(("init", log_name))
            return lambda: calls.append(("uninit", log_name))

    lc = Counting()
    logconfig_base.oneshot_initialize_logging(log_config=lc, log_dir=tmp_path, log_name="a")
    logconfig_base.oneshot_initialize_logging(log_config=lc, log_dir=tmp_path, log_name="b")
    logconfig_base.oneshot_uninitialize_logging(log_config=lc)
    assert calls == [("init", "a")]
    logconfig_base.oneshot_uninitialize_logging(log_config=lc)
    assert calls == [("init", "a"), ("uninit", "a")]
    with pytest.raises(ValueError, match="not initialised"):
        logconfig_base.oneshot_uninitialize_logging(log_config=lc)


def test_initialize_logging_must_be_a_bool_or_log_config():
    with pytest.raises(TypeError, match="LogConfig"):
        Config(initialize_logging="yes")


def test_a_debug_log_config_leaves_the_levels_as_it_found_them(tmp_path):
    before = (logging.getLogger().level, logging.getLogger("taskscope").level)
    _run(tmp_path, JSONLogging())
    _run(tmp_path, FileLogging())
    assert (logging.getLogger().level, logging.getLogger("taskscope").level) == before


def test_each_executor_is_announced_with_its_label_and_type(load_config, caplog):
    caplog.set_level(logging.INFO, logger="taskscope")
    load_config()
    seen = {
        (r.__dict__["parsl.executor.label"], r.__dict__["taskscope.executor.type"])
        for r in _records_with(caplog, "parsl.executor.label")
    }
    assert ("threads", "taskscope.executors.threads.ThreadPoolExecutor") in seen
    assert "Adding executor threads of type" in caplog.text
