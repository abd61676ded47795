"""Bash app stdout=/stderr= as Parsl reads them: a path appends, (path, mode) opens with
that mode, File gives a DataFuture, AUTO_LOGNAME names include the label, std_autopath
names them, malformed specs fail with Parsl's exception types."""

from __future__ import annotations

import os
import re

import pytest

import taskscope
from taskscope import AUTO_LOGNAME, File, bash_app
from taskscope.app.errors import BadStdStreamFile
from taskscope.dataflow.futures import DataFuture
from taskscope.executors import HighThroughputExecutor, ThreadPoolExecutor


@bash_app
def echo(message, stdout=None, stderr=None, label=None):
    return f'echo "{message}"; echo "err {message}" >&2'


@bash_app
def logged(stdout=AUTO_LOGNAME, stderr=AUTO_LOGNAME):
    return "echo hello; echo goodbye >&2"


def lines(path) -> list[str]:
    with open(path) as f:
        return f.read().splitlines()


@pytest.fixture(params=["threads", "htex"])
def executor_config(request, load_config):
    """The std stream behaviour is the worker's: check it in threads and worker processes."""
    if request.param == "threads":
        return load_config(executors=[ThreadPoolExecutor(max_threads=2)])
    return load_config(executors=[HighThroughputExecutor(label="htex", max_workers_per_node=1)])


def test_a_path_appends_and_a_w_tuple_truncates(executor_config, tmp_path):
    out = str(tmp_path / "out.txt")
    echo("one", stdout=out).result()
    echo("two", stdout=out).result()
    assert lines(out) == ["one", "two"]  # Parsl opens a plain path with mode 'a+'

    echo("three", stdout=(out, "a")).result()
    assert lines(out) == ["one", "two", "three"]

    echo("four", stdout=(out, "w")).result()
    assert lines(out) == ["four"]


def test_stdout_file_gives_a_data_future(load_config, tmp_path):
    load_config()
    target = File("file://" + str(tmp_path / "stdout.txt"))
    fut = echo("hello", stdout=target)
    assert isinstance(fut.stdout, DataFuture)
    assert fut.stdout.result() is target
    assert lines(target.filepath) == ["hello"]
    assert fut.stderr is None


def test_auto_logname_includes_the_label(load_config):
    dfk = load_config()
    fut = echo("x", stdout=AUTO_LOGNAME, stderr=AUTO_LOGNAME, label="mylabel")
    fut.result()
    assert re.fullmatch(r".*/task_\d{4}_echo_mylabel\.stdout", fut.stdout)
    assert fut.stdout.startswith(os.path.join(dfk.run_dir, "task_logs", "0000"))
    assert lines(fut.stdout) == ["x"] and lines(fut.stderr) == ["err x"]
    unlabelled = logged()
    unlabelled.result()
    assert unlabelled.stdout.endswith(f"task_{unlabelled.tid:04d}_logged.stdout")


def test_std_autopath_names_auto_logname_files(load_config, tmp_path):
    calls = []

    def autopath(record, stream):
        calls.append((record.id, record.func_name, stream))
        return str(tmp_path / f"{record.func_name}.{record.id}.{stream}")

    load_config(std_autopath=autopath)
    fut = logged()
    assert fut.stdout == str(tmp_path / f"logged.{fut.tid}.stdout")
    fut.result()
    assert calls == [(fut.tid, "logged", "stdout"), (fut.tid, "logged", "stderr")]
    assert lines(fut.stdout) == ["hello"] and lines(fut.stderr) == ["goodbye"]


def test_std_autopath_that_raises_fails_the_call(load_config):
    class Broken(Exception):
        pass

    def autopath(record, stream):
        raise Broken("no name for you")

    load_config(std_autopath=autopath)
    with pytest.raises(Broken):
        logged()


def test_auto_logname_is_not_part_of_the_memo_key(load_config):
    dfk = load_config()
    cached = bash_app(cache=True)(logged.func)
    first = cached()
    first.result()
    second = cached()
    second.result()
    assert second.task_record.from_memo
    assert dfk.task_state_counts[taskscope.States.memo_done] == 1


@pytest.mark.parametrize(
    ("spec", "error"),
    [
        (["t.out", "w"], TypeError),  # a list, not a tuple
        (("t.out", None), TypeError),  # no mode
        ((42, "w"), TypeError),  # not a path
        (("t.out", "w", 42), BadStdStreamFile),  # 3-tuple
        (("t.out",), BadStdStreamFile),  # 1-tuple
        (("t.out", "badmode"), BadStdStreamFile),  # open() refuses the mode
    ],
    ids=["list", "null-mode", "not-a-path", "3tuple", "1tuple", "bad-mode"],
)
def test_malformed_specs_fail_the_task_with_parsls_exception_types(load_config, spec, error):
    load_config()
    exc = echo("x", stdout=spec).exception(timeout=60)
    assert type(exc) is error, repr(exc)


def test_an_unopenable_file_is_bad_std_stream_file(load_config, tmp_path):
    load_config()
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    exc = echo("x", stdout=str(blocker / "under-a-file.out")).exception(timeout=60)
    assert isinstance(exc, BadStdStreamFile)
