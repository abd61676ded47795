"""Config validation and DataFlowKernel details Parsl programs and tests rely on."""

from __future__ import annotations

import time
from concurrent.futures import Future

import pytest

import taskscope
from taskscope import python_app
from taskscope.config import Config
from taskscope.dataflow.dependency_resolvers import DEEP_DEPENDENCY_RESOLVER
from taskscope.dataflow.dflow import DataFlowKernelLoader
from taskscope.dataflow.states import States
from taskscope.errors import AppTimeout, ConfigurationError


@python_app
def inc(x):
    return x + 1


@python_app
def total(items):
    return sum(items)


@python_app
def fail():
    raise RuntimeError("deliberate")


@python_app
def wait_for(gate):
    return gate


def test_task_state_counts_follow_the_tasks(load_config):
    dfk = load_config()
    counts = dfk.task_state_counts
    assert set(counts) == set(States) and sum(counts.values()) == 0
    gate = Future()
    waiting = wait_for(gate)
    inc(1).result()
    fail().exception()
    counts = dfk.task_state_counts
    assert counts[States.pending] == 1
    assert counts[States.exec_done] == 1 and counts[States.failed] == 1
    gate.set_result(0)
    waiting.result()
    assert dfk.task_state_counts[States.exec_done] == 2
    assert dfk.task_state_counts[States.pending] == 0


def test_cleanup_called_and_the_no_config_message(load_config):
    dfk = load_config()
    assert dfk.cleanup_called is False
    dfk.cleanup()
    assert dfk.cleanup_called is True
    assert DataFlowKernelLoader._dfk is None
    with pytest.raises(taskscope.errors.NoDataFlowKernelError) as info:
        taskscope.dfk()
    assert str(info.value) == "Must first load config"


@pytest.mark.parametrize("level", [0, 1, 2, 3, False, True])
def test_usage_tracking_levels_accepted(level):
    assert Config(usage_tracking=level).usage_tracking == level


@pytest.mark.parametrize("level", [12, 1000, -1])
def test_usage_tracking_out_of_range_is_a_configuration_error(level):
    with pytest.raises(ConfigurationError, match="0, 1, 2, or 3"):
        Config(usage_tracking=level)


@pytest.mark.parametrize("level", ["abcd", None, b"\x00", 1.0, 1j, object()])
def test_usage_tracking_of_another_type_is_a_type_error(level):
    with pytest.raises(TypeError):
        Config(usage_tracking=level)


@pytest.mark.parametrize("name", [1, 1.0, b"x", object()])
def test_project_name_must_be_a_str(name):
    with pytest.raises(TypeError, match="project_name"):
        Config(usage_tracking=3, project_name=name)
    assert Config(usage_tracking=3, project_name="unit-test").project_name == "unit-test"


@pytest.mark.parametrize("mode", ["wrongmode", 3, None])
def test_a_bad_exit_mode_is_a_type_error(mode):
    with pytest.raises(TypeError, match="exit_mode"):
        Config(exit_mode=mode)


def test_futures_in_a_default_inputs_list_are_resolved(load_config):
    load_config()
    gate = Future()

    @python_app
    def uses_default(inputs=[gate]):  # noqa: B006 - Parsl's idiom under test
        return inputs[0] * 2

    fut = uses_default()
    assert not fut.done()  # waits for the future in its default inputs
    gate.set_result(21)
    assert fut.result(timeout=30) == 42


def test_a_walltime_default_in_the_signature_is_enforced(load_config):
    load_config()

    @python_app
    def sleeper(walltime=0.5):
        for _ in range(200):
            time.sleep(0.05)
        return "finished"

    with pytest.raises(AppTimeout):
        sleeper().result(timeout=60)
    assert sleeper(walltime=30).task_record.func.__name__ == "sleeper"


def test_deep_dependency_resolver_waits_for_futures_inside_structures(load_config):
    load_config(dependency_resolver=DEEP_DEPENDENCY_RESOLVER)
    gate = Future()

    @python_app
    def nested_sum(items):
        return items[0] + sum(items[1])

    fut = nested_sum([inc(1), (inc(2), gate)])
    assert not fut.done()
    gate.set_result(10)
    assert fut.result(timeout=30) == 2 + 3 + 10

    @python_app
    def keys(mapping):
        return sorted(mapping.items())

    assert keys({"a": inc(0), "b": [inc(1)]}).result() == [("a", 1), ("b", [2])]


def test_the_shallow_default_passes_nested_futures_through(load_config):
    load_config()

    @python_app
    def kinds(items):
        return [type(i).__name__ for i in items]

    assert kinds([inc(1)]).result() == ["AppFuture"]


def test_a_bad_dependency_resolver_is_refused():
    with pytest.raises(TypeError, match="DependencyResolver"):
        Config(dependency_resolver="deep")


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ("memoizer", "a Memoizer such as BasicMemoizer()"),
        ("dependency_resolver", "a DependencyResolver such as DEEP_DEPENDENCY_RESOLVER"),
        ("initialize_logging", "True, False or a LogConfig such as FileLogging()"),
        ("project_name", "a str"),
    ],
)
def test_a_value_of_the_wrong_type_names_the_option_and_what_it_takes(option, message):
    with pytest.raises(TypeError) as refused:
        Config(**{option: 3})
    assert str(refused.value) == f"Config({option}=...) must be {message}, got int"


def test_parsls_local_threads_test_config_loads_and_runs_after_the_import_swap(tmp_path):
    # Parsl's parsl/tests/configs/local_threads.py with its imports swapped.
    source = (
        "from taskscope.config import Config\n"
        "from taskscope.executors.threads import ThreadPoolExecutor\n"
        "\n\n"
        "def fresh_config():\n"
        "    return Config(\n"
        "        executors=[ThreadPoolExecutor()],\n"
        "    )\n"
        "\n\n"
        "config = fresh_config()\n"
    )
    namespace: dict = {}
    exec(compile(source, "local_threads.py", "exec"), namespace)
    config = namespace["fresh_config"]()
    config.run_dir = str(tmp_path)
    with taskscope.load(config) as dfk:
        assert inc(inc(1)).result() == 3
    assert dfk.cleanup_called


SIGNAL_PARENT = """
import os, signal, sys, time
import taskscope
from taskscope import python_app
from taskscope.config import Config
from taskscope.executors import HighThroughputExecutor

@python_app
def parent_of_worker():
    return os.getppid(), os.getpid()

@python_app
def signal_parent():
    os.kill(os.getppid(), signal.SIGTERM)
    time.sleep(60)

config = Config(executors=[HighThroughputExecutor(max_workers_per_node=1)], run_dir="runinfo")
with taskscope.load(config) as dfk:
    parent, worker = parent_of_worker().result()
    print("parent", parent == os.getpid(), flush=True)
    print("worker", worker, flush=True)
    try:
        signal_parent().result()
    finally:
        print("status", dfk.run_status(), flush=True)
"""


def test_signalling_a_workers_parent_signals_the_workflow(tmp_path):
    """docs/compatibility.md: an HTEX worker's parent is the workflow process itself."""
    import os
    import subprocess
    import sys

    import psutil

    script = tmp_path / "signal_parent.py"
    script.write_text(SIGNAL_PARENT)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    proc = subprocess.Popen(
        [sys.executable, str(script)], cwd=tmp_path, env=env, stdout=subprocess.PIPE, text=True
    )
    out, _ = proc.communicate(timeout=120)
    assert "parent True" in out
    assert "status aborted" in out
    assert proc.returncode == 128 + 15
    worker = int(out.split("worker ")[1].split()[0])
    deadline = time.time() + 30
    while psutil.pid_exists(worker) and time.time() < deadline:
        time.sleep(0.1)
    assert not psutil.pid_exists(worker), "the worker outlived the signalled workflow"
