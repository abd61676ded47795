"""Parsl's module paths import under taskscope with the names Parsl programs use."""

from __future__ import annotations

import importlib
import logging
import pickle

import pytest

import taskscope

PATHS = [
    ("taskscope.dataflow.errors", ["DependencyError", "JoinError", "PropagatedException"]),
    ("taskscope.data_provider.data_manager", ["default_staging"]),
    ("taskscope.data_provider.file_noop", ["NoOpFileStaging"]),
    ("taskscope.data_provider.staging", ["Staging"]),
    (
        "taskscope.dataflow.dependency_resolvers",
        ["DEEP_DEPENDENCY_RESOLVER", "SHALLOW_DEPENDENCY_RESOLVER", "DependencyResolver"],
    ),
    ("taskscope.logconfigs.file", ["FileLogging"]),
    ("taskscope.logconfigs.json", ["JSONLogging"]),
    ("taskscope.logconfigs.noop", ["NoopLogging"]),
    ("taskscope.logconfigs.base", ["LogConfig", "oneshot_initialize_logging"]),
    ("taskscope.log_utils", ["set_file_logger", "set_stream_logger", "DEFAULT_FORMAT"]),
    ("taskscope.jobs.states", ["JobState", "JobStatus", "TERMINAL_STATES"]),
    ("taskscope.serialize.errors", ["SerializationError", "DeserializationError"]),
    ("taskscope.dataflow.memoization", ["BasicMemoizer", "Memoizer", "id_for_memo"]),
]


@pytest.mark.parametrize(("module", "names"), PATHS, ids=[m for m, _ in PATHS])
def test_parsl_module_paths_import(module, names):
    mod = importlib.import_module(module)
    for name in names:
        assert hasattr(mod, name), f"{module}.{name}"


def test_executors_are_exported_from_the_package_root():
    from taskscope import HighThroughputExecutor, ThreadPoolExecutor
    from taskscope.executors import HighThroughputExecutor as H
    from taskscope.executors import ThreadPoolExecutor as T

    assert HighThroughputExecutor is H and ThreadPoolExecutor is T
    assert "HighThroughputExecutor" in taskscope.__all__
    with pytest.raises(AttributeError, match="no attribute 'NoSuchThing'"):
        taskscope.NoSuchThing  # noqa: B018


def test_job_states_have_parsl_names_numbers_and_terminality(tmp_path):
    from taskscope.jobs.states import JobState, JobStatus

    assert {s.name: s.value for s in JobState} == {
        "UNKNOWN": 0, "PENDING": 1, "RUNNING": 2, "CANCELLED": 3, "COMPLETED": 4,
        "FAILED": 5, "TIMEOUT": 6, "HELD": 7, "MISSING": 8, "SCALED_IN": 9,
    }  # fmt: skip
    assert str(JobState.RUNNING) == "JobState.RUNNING"
    assert not JobStatus(JobState.RUNNING).terminal
    assert JobStatus(JobState.SCALED_IN).terminal
    out = tmp_path / "job.out"
    out.write_text("a" * 1500 + "b" * 1500)
    status = JobStatus(JobState.FAILED, message="boom", exit_code=3, stdout_path=str(out))
    assert str(status) == "JobState.FAILED (boom)" and status.status_name == "FAILED"
    summary = status.stdout_summary
    assert summary == "a" * 1024 + "\n...\n" + "b" * 1024
    assert status.stdout == "a" * 1500 + "b" * 1500
    assert JobStatus(JobState.FAILED, stdout_path=str(tmp_path / "absent")).stdout_summary is None
    with pytest.raises(TypeError, match="JobState"):
        JobStatus("RUNNING")


def test_noop_staging_takes_local_files_only():
    from taskscope.data_provider.data_manager import default_staging
    from taskscope.data_provider.file_noop import NoOpFileStaging
    from taskscope.data_provider.ftp import FTPInTaskStaging
    from taskscope.data_provider.http import HTTPInTaskStaging
    from taskscope.data_provider.zip import ZipFileStaging

    kinds = [NoOpFileStaging, FTPInTaskStaging, HTTPInTaskStaging, ZipFileStaging]
    assert [type(s) for s in default_staging] == kinds
    noop = default_staging[0]
    assert noop.can_stage_in(taskscope.File("/tmp/x")) and noop.can_stage_out(
        taskscope.File("file:///tmp/x")
    )
    assert not noop.can_stage_in(taskscope.File("https://example.org/x"))


def test_serialization_errors_pickle_and_are_taskscope_errors():
    from taskscope.errors import TaskscopeError
    from taskscope.serialize.errors import DeserializationError, SerializationError

    e = pickle.loads(pickle.dumps(DeserializationError("truncated frame")))
    assert str(e) == "Failed to deserialize objects. Reason: truncated frame"
    assert issubclass(SerializationError, TaskscopeError)


def test_log_utils_return_a_callable_that_removes_the_handler(tmp_path):
    from taskscope.log_utils import set_file_logger

    path = tmp_path / "x.log"
    undo = set_file_logger(str(path), name="taskscope.compat_probe", level=logging.INFO)
    log = logging.getLogger("taskscope.compat_probe")
    log.info("first line")
    undo()
    log.info("second line")
    text = path.read_text()
    assert "first line" in text and "second line" not in text
    assert taskscope.set_file_logger is set_file_logger
