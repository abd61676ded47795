"""bash_app: command lines, exit codes, stdout/stderr files, outputs, walltime."""

from __future__ import annotations

import time
import uuid

import psutil
import pytest

import taskscope
from taskscope import File, bash_app
from taskscope.dataflow.states import States
from taskscope.errors import AppTimeout, BashExitFailure, MissingOutputs


@bash_app
def echo(message, stdout=None, stderr=None):
    return f"echo {message}; echo to-stderr 1>&2"


@bash_app
def exit_with(code):
    return f"exit {code}"


@bash_app
def touch(outputs=()):
    return f"touch {outputs[0]}"


@bash_app
def promise_without_writing(outputs=()):
    return "true"


@bash_app
def sleep_marked(marker, walltime=None):
    return f"sleep 30 && echo {marker}"


@bash_app
def no_command():
    return None


def test_stdout_and_stderr_go_to_files(load_workflow, tmp_path):
    load_workflow()
    out, err = tmp_path / "logs" / "echo.out", tmp_path / "echo.err"
    fut = echo("hello", stdout=str(out), stderr=str(err))
    assert fut.result() == 0
    assert out.read_text() == "hello\n"
    assert "to-stderr" in err.read_text()
    assert fut.stdout == str(out)
    # (path, "a") appends, as in Parsl.
    echo("again", stdout=(str(out), "a")).result()
    assert out.read_text() == "hello\nagain\n"


def test_auto_logname_puts_streams_in_the_run_dir(load_workflow):
    dfk = load_workflow()
    fut = echo("auto", stdout=taskscope.AUTO_LOGNAME, stderr=taskscope.AUTO_LOGNAME)
    fut.result()
    assert fut.stdout.startswith(dfk.run_dir) and fut.stdout.endswith("_echo.stdout")
    with open(fut.stdout) as f:
        assert f.read() == "auto\n"


def test_non_zero_exit_fails_with_the_exit_code(load_workflow):
    load_workflow()
    fut = exit_with(3)
    with pytest.raises(BashExitFailure, match="exit code 3") as info:
        fut.result()
    assert info.value.exitcode == 3
    assert fut.task_record.status is States.failed
    assert fut.task_record.try_failures[0].exit_code == 3


def test_output_files_become_data_futures(load_workflow, tmp_path):
    load_workflow()
    target = tmp_path / "made.txt"
    fut = touch(outputs=[File(str(target))])
    assert fut.outputs[0].result().filepath == str(target)
    assert target.exists()
    with pytest.raises(MissingOutputs, match=r"missing.txt"):
        promise_without_writing(outputs=[File(str(tmp_path / "missing.txt"))]).result()


def test_walltime_kills_the_command_and_its_children(load_workflow):
    load_workflow()
    marker = uuid.uuid4().hex
    started = time.monotonic()
    fut = sleep_marked(marker, walltime=0.5)
    with pytest.raises(AppTimeout, match="walltime"):
        fut.result(timeout=20)
    assert time.monotonic() - started < 20
    leftovers = [
        p for p in psutil.process_iter(["cmdline"]) if marker in " ".join(p.info["cmdline"] or [])
    ]
    assert leftovers == []


def test_walltime_must_be_positive(load_workflow):
    load_workflow()
    with pytest.raises(ValueError, match="walltime"):
        sleep_marked("x", walltime=-1)


def test_returning_none_is_a_clear_error(load_workflow):
    load_workflow()
    with pytest.raises(Exception, match="returned None"):
        no_command().result()


def test_cleanup_kills_running_commands(load_workflow):
    dfk = load_workflow()
    marker = uuid.uuid4().hex
    fut = sleep_marked(marker)
    deadline = time.monotonic() + 20

    def running():
        return [
            p
            for p in psutil.process_iter(["cmdline"])
            if marker in " ".join(p.info["cmdline"] or [])
        ]

    while not running():
        assert time.monotonic() < deadline, "the command never started"
        time.sleep(0.02)
    dfk.cleanup()
    assert fut.exception(timeout=20) is not None
    assert running() == []
