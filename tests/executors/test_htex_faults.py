"""HighThroughputExecutor under faults: dying workers, unserialisable data, bad set-up."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

import taskscope
from taskscope import bash_app, python_app
from taskscope.config import Config
from taskscope.dataflow.states import States
from taskscope.errors import (
    ExecutorError,
    RemoteExceptionWrapper,
    SerializationError,
    WorkerLost,
)
from taskscope.executors import HighThroughputExecutor
from taskscope.providers import LocalProvider


@pytest.fixture
def executor_kind():
    return "htex"


@python_app
def pid_of_worker():
    import os

    return os.getpid()


@python_app
def pid_after_sleep(seconds):
    import os
    import time

    time.sleep(seconds)
    return os.getpid()


@python_app
def exit_hard():
    import os

    os._exit(7)


@python_app
def segfault():
    import os
    import signal

    os.kill(os.getpid(), signal.SIGSEGV)


@python_app
def announce_then_sleep(pid_file, seconds):
    import os
    import time

    with open(pid_file + ".tmp", "w") as f:
        f.write(str(os.getpid()))
    os.rename(pid_file + ".tmp", pid_file)
    time.sleep(seconds)
    return "slept"


@python_app
def die_on_first_try(marker):
    import os

    if not os.path.exists(marker):
        open(marker, "w").close()
        os._exit(1)
    return "second try"


@python_app
def identity(x=None, **kwargs):
    return x


@python_app
def unpicklable_result():
    import threading

    return threading.Lock()


class Unpicklable(Exception):
    def __reduce__(self):
        raise TypeError("no pickling")


@python_app
def raise_unpicklable():
    raise Unpicklable("custom failure")


@bash_app
def long_sleep():
    return "sleep 60"


def wait_for_file(path, timeout=20.0):
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.02)
    with open(path) as f:
        return int(f.read())


def test_os_exit_fails_the_task_and_the_worker_is_replaced(load_workflow):
    load_workflow()
    before = {pid_of_worker().result() for _ in range(20)}
    fut = exit_hard()
    with pytest.raises(WorkerLost, match="exited with status 7"):
        fut.result(timeout=30)
    assert fut.task_record.status is States.failed
    results = [identity(i) for i in range(200)]
    assert [f.result(timeout=30) for f in results] == list(range(200))
    # The survivor may run everything while the replacement still imports; once it has said
    # hello, two tasks that overlap in time must run on two workers, one of them new.
    executor = taskscope.dfk().executors["htex"]
    deadline = time.monotonic() + 30
    while executor.connected_workers < 2:
        assert time.monotonic() < deadline, "the lost worker was never replaced"
        time.sleep(0.05)
    after = {f.result(timeout=30) for f in [pid_after_sleep(0.5) for _ in range(2)]}
    assert after - before, "no replacement worker ran tasks"


def test_segfault_is_reported_as_a_lost_worker(load_workflow):
    load_workflow()
    with pytest.raises(WorkerLost, match="SIGSEGV"):
        segfault().result(timeout=30)
    assert identity(5).result(timeout=30) == 5


def test_sigkill_mid_task_fails_only_that_task(load_workflow, tmp_path):
    load_workflow()
    pid_file = str(tmp_path / "pid")
    victim = announce_then_sleep(pid_file, 60)
    others = [identity(i) for i in range(50)]
    os.kill(wait_for_file(pid_file), signal.SIGKILL)
    with pytest.raises(WorkerLost, match=r"SIGKILL.*OOM"):
        victim.result(timeout=30)
    assert [f.result(timeout=30) for f in others] == list(range(50))


def test_lost_worker_counts_as_a_retryable_failure(load_workflow, tmp_path):
    load_workflow(retries=1)
    fut = die_on_first_try(str(tmp_path / "marker"))
    assert fut.result(timeout=30) == "second try"
    assert isinstance(fut.task_record.try_failures[0].exception, WorkerLost)


def test_unserialisable_argument_fails_that_task_naming_it(load_workflow):
    load_workflow()
    fut = identity(threading.Lock())
    with pytest.raises(SerializationError, match=r"argument 0 \('x'\).*lock"):
        fut.result(timeout=10)
    with pytest.raises(SerializationError, match="keyword argument 'extra'"):
        identity(1, extra=threading.Lock()).result(timeout=10)
    assert identity(2).result(timeout=10) == 2


def test_unserialisable_result_and_exception_are_reported(load_workflow):
    load_workflow()
    with pytest.raises(SerializationError, match="result of type lock"):
        unpicklable_result().result(timeout=10)
    with pytest.raises(RemoteExceptionWrapper, match="Unpicklable: custom failure") as info:
        raise_unpicklable().result(timeout=10)
    assert "raise_unpicklable" in info.value._taskscope_remote_traceback


def test_lambdas_and_large_arguments_travel(load_workflow):
    load_workflow()

    @python_app
    def apply(fn, data):
        return fn(len(data))

    big = b"x" * (5 << 20)  # larger than any pipe buffer
    assert apply(lambda n: n + 1, big).result(timeout=30) == len(big) + 1


def test_worker_init_failure_is_an_error_not_a_hang(tmp_path):
    executor = HighThroughputExecutor(
        label="broken",
        max_workers=1,
        provider=LocalProvider(worker_init="echo cannot-activate-env >&2; exit 9"),
    )
    with (
        taskscope.load(Config(executors=[executor], run_dir=str(tmp_path))),
        pytest.raises(ExecutorError, match="cannot-activate-env"),
    ):
        identity(1).result(timeout=30)


def test_cleanup_stops_running_tasks_and_their_children(load_workflow):
    dfk = load_workflow()
    fut = long_sleep()
    deadline = time.monotonic() + 20
    while fut.task_record.status is not States.launched or not dfk.executors["htex"].outstanding:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    time.sleep(0.3)  # let the worker start the shell
    dfk.cleanup()
    with pytest.raises(ExecutorError, match="shut down"):
        fut.result(timeout=10)
    # the fixture asserts that no child process is left


def test_a_config_can_be_loaded_again_after_cleanup(tmp_path):
    config = Config(
        executors=[HighThroughputExecutor(label="again", max_workers=1)], run_dir=str(tmp_path)
    )
    for round_number in range(2):
        with taskscope.load(config):
            assert identity(round_number).result(timeout=30) == round_number
