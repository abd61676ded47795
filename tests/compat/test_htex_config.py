"""Parsl's HighThroughputExecutor configuration and behaviour, after the import swap.

Parsl's own test configs (``parsl_htex_configs/``, imports swapped) load and run an app, and
each setting does what Parsl's documentation and tests say, checked on what really happened
in the workers (their environment, affinity, working directory, block).
"""

from __future__ import annotations

import os
import sys
import time

import pytest

import taskscope
from taskscope import python_app
from taskscope.config import Config
from taskscope.executors import HighThroughputExecutor
from taskscope.launchers import SingleNodeLauncher
from taskscope.providers import LocalProvider

sys.path.insert(0, os.path.dirname(__file__))
from parsl_htex_configs import htex_local


@pytest.fixture
def in_tmp_cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def loaded(in_tmp_cwd):
    dfks = []

    def load(config):
        config.run_dir = str(in_tmp_cwd / "runinfo")
        dfk = taskscope.load(config)
        dfks.append(dfk)
        return dfk

    yield load
    for dfk in dfks:
        dfk.cleanup()
    taskscope.clear()


@python_app
def dummy():
    pass


@python_app
def worker_facts(seconds=0.0):
    import os
    import time

    time.sleep(seconds)
    return {
        "cwd": os.getcwd(),
        "pid": os.getpid(),
        "rank": os.environ["PARSL_WORKER_RANK"],
        "count": os.environ["PARSL_WORKER_COUNT"],
        "pool": os.environ["PARSL_WORKER_POOL_ID"],
        "block": os.environ["PARSL_WORKER_BLOCK_ID"],
        "affinity": sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "cuda": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "wrapped": os.environ.get("WRAPPED_BY_LAUNCH_CMD"),
    }


def wait_until(predicate, timeout=60.0, what="condition"):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_parsl_htex_local_config_loads_and_runs(loaded):
    config = htex_local.fresh_config()
    htex = config.executors[0]
    assert htex.label == "htex_local" and htex.loopback_address == "::1"
    # test_basic.py's tweaks, made after construction
    htex.poll_period = 1
    htex.max_workers_per_node = 1
    loaded(config)
    assert dummy().result(timeout=60) is None
    assert htex.connected_workers == 1


def test_working_dir_need_not_exist_and_workers_run_in_the_workflow_cwd(loaded, in_tmp_cwd):
    # htex_local_alternate.py's executor, as Parsl writes it
    working_dir = os.getcwd() + "/" + "test_htex_alternate"
    htex = HighThroughputExecutor(
        address="127.0.0.1",
        label="htex_Local",
        working_dir=working_dir,
        worker_debug=True,
        cores_per_worker=1,
        heartbeat_period=2,
        heartbeat_threshold=5,
        poll_period=100,
        encrypted=True,
        provider=LocalProvider(
            init_blocks=0, min_blocks=0, max_blocks=5, launcher=SingleNodeLauncher()
        ),
        block_error_handler=False,
    )
    loaded(Config(executors=[htex], strategy="simple", retries=2))
    facts = worker_facts().result(timeout=60)
    assert facts["cwd"] == str(in_tmp_cwd)
    assert htex.working_dir == working_dir
    assert not os.path.exists(working_dir)


def test_a_failed_executor_start_raises_its_own_error(in_tmp_cwd):
    bad = HighThroughputExecutor(label="bad", max_workers_per_node=2, cpu_affinity="list:0")
    with pytest.raises(ValueError, match="lists 1 workers' cores; the pool has 2"):
        taskscope.load(Config(executors=[bad], run_dir=str(in_tmp_cwd / "runinfo")))
    # the kernel cleaned up: another config loads
    with taskscope.load(Config(executors=[HighThroughputExecutor(max_workers_per_node=1)])):
        assert dummy().result(timeout=60) is None


def test_missing_worker_command_sets_the_bad_state(loaded):
    from taskscope.executors.errors import BadStateException

    config = htex_local.fresh_config()
    config.executors[0].max_workers_per_node = 1
    config.executors[0].launch_cmd = "executable_that_hopefully_does_not_exist_1030509.py"
    dfk = loaded(config)
    with pytest.raises(BadStateException, match="workers fail to start"):
        dummy().result(timeout=120)
    htex = dfk.config.executors[0]
    assert htex._executor_bad_state.is_set() and htex.bad_state_is_set
    assert isinstance(htex.executor_exception, BadStateException)
    assert "command not found" in str(htex.executor_exception)
    assert "EXIT CODE: 127" in str(htex.executor_exception)  # as Parsl words a block failure
    with pytest.raises(BadStateException):
        dummy().result(timeout=60)  # later tasks fail at once with the same error


def test_launch_cmd_wraps_the_worker(loaded):
    assert HighThroughputExecutor().launch_cmd.startswith("process_worker_pool.py")
    cmd = (
        "env WRAPPED_BY_LAUNCH_CMD={cores_per_worker} process_worker_pool.py {debug} "
        "--block_id={{block_id}}"
    )
    htex = HighThroughputExecutor(label="htex_local", max_workers_per_node=1, launch_cmd=cmd)
    assert htex.launch_cmd == cmd
    loaded(Config(executors=[htex]))
    assert worker_facts().result(timeout=60)["wrapped"] == "1.0"


def test_loopback_address_and_drain_period_are_checked():
    assert HighThroughputExecutor().loopback_address == "127.0.0.1"
    assert HighThroughputExecutor(loopback_address="::1").loopback_address == "::1"
    with pytest.raises(ValueError, match="loopback_address"):
        HighThroughputExecutor(loopback_address="localhost:54000")
    with pytest.raises(ValueError, match="drain_period"):
        HighThroughputExecutor(drain_period=-1)
    with pytest.raises(ValueError, match="cpu_affinity"):
        HighThroughputExecutor(cpu_affinity="blocks")


def test_drain_period_drains_the_block_then_starts_a_new_one(loaded):
    drain = 3
    htex = HighThroughputExecutor(
        label="htex_local",
        drain_period=drain,
        max_workers_per_node=1,
        provider=LocalProvider(init_blocks=1, min_blocks=0, max_blocks=0),
    )
    loaded(Config(executors=[htex], strategy="none"))
    wait_until(lambda: len(htex.connected_managers()) == 1, what="a manager")
    manager = htex.connected_managers()[0]
    assert manager["active"] and not manager["draining"]
    running = worker_facts(drain * 2)
    wait_until(lambda: htex.connected_managers()[0]["draining"], what="draining")
    assert not running.done(), "the task should still be running while its block drains"
    first = running.result(timeout=60)
    wait_until(lambda: htex.connected_managers() == [], what="the drained block to go")
    # A task submitted now starts the block afresh (a new worker process).
    again = worker_facts().result(timeout=60)
    assert again["pool"] == first["pool"] and again["pid"] != first["pid"]


def test_connected_managers_report_the_pool(loaded):
    htex = HighThroughputExecutor(label="htex_local", max_workers_per_node=2)
    loaded(Config(executors=[htex]))
    pools = {worker_facts().result(timeout=60)["pool"] for _ in range(4)}
    wait_until(lambda: htex.connected_workers == 2, what="both workers")
    (manager,) = htex.connected_managers()
    assert manager["manager"] in pools and len(pools) == 1
    assert manager["block_id"] == "0" and manager["worker_count"] == 2
    assert manager["parsl_version"] == taskscope.__version__
    v = sys.version_info
    assert manager["python_version"] == f"{v.major}.{v.minor}.{v.micro}"
    packages = htex.connected_managers_packages()
    assert list(packages) == [manager["manager"]]
    assert packages[manager["manager"]]["taskscope"] == taskscope.__version__
    assert htex.connected_blocks() == ["0"]


def test_worker_rank_count_and_pool_id(loaded):
    htex = HighThroughputExecutor(label="htex_Local", max_workers_per_node=2)
    loaded(Config(executors=[htex], strategy="none"))
    wait_until(lambda: htex.connected_workers == 2, what="both workers")
    facts = [f.result(timeout=60) for f in [worker_facts(0.5) for _ in range(4)]]
    assert {f["count"] for f in facts} == {"2"}
    assert {f["rank"] for f in facts} == {"0", "1"}
    assert len({f["pool"] for f in facts}) == 1


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity"), reason="no sched_getaffinity")
@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two cores")
def test_cpu_affinity_block_and_accelerators(loaded):
    cores = sorted(os.sched_getaffinity(0))
    htex = HighThroughputExecutor(
        label="htex_Local", max_workers_per_node=2, cpu_affinity="block", available_accelerators=2
    )
    loaded(Config(executors=[htex], strategy="none"))
    wait_until(lambda: htex.connected_workers == 2, what="both workers")
    facts = [f.result(timeout=60) for f in [worker_facts(0.5) for _ in range(4)]]
    by_rank = {f["rank"]: (tuple(f["affinity"]), f["cuda"]) for f in facts}
    half = len(cores) // 2
    assert by_rank["0"] == (tuple(cores[:half]), "0")
    assert by_rank["1"] == (tuple(cores[half : 2 * half]), "1")


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity"), reason="no sched_getaffinity")
def test_cpu_affinity_explicit_list(loaded):
    core = max(os.sched_getaffinity(0))
    config = htex_local.fresh_config()
    config.executors[0].cpu_affinity = f"list:{core}"
    config.executors[0].max_workers_per_node = 1
    loaded(config)
    assert worker_facts().result(timeout=60)["affinity"] == [core]


def test_workers_per_node_follows_parsls_rules(loaded):
    def htex(**kwargs):
        provider = LocalProvider(max_blocks=0, init_blocks=0, min_blocks=0)
        for name in ("cores_per_node", "mem_per_node"):
            if name in kwargs:
                setattr(provider, name, kwargs.pop(name))
        return HighThroughputExecutor(provider=provider, **kwargs)

    assert htex(max_workers_per_node=7).workers_per_node == 7
    assert htex(max_workers_per_node=16, cores_per_node=8, cores_per_worker=4).workers_per_node == 2
    assert (
        htex(
            max_workers_per_node=16, cores_per_node=8, mem_per_node=16, cores_per_worker=4,
            mem_per_worker=16,
        ).workers_per_node
        == 1
    )  # fmt: skip
    assert (
        htex(
            max_workers_per_node=16, cores_per_node=16, mem_per_node=16, cores_per_worker=4,
            mem_per_worker=2, available_accelerators=3,
        ).workers_per_node
        == 3
    )  # fmt: skip
    # Without any limit Parsl guesses 1; taskscope says how many workers a block starts.
    unlimited = htex()
    assert unlimited.workers_per_node == unlimited.workers_per_block >= 1
    h = htex(max_workers_per_node=3)
    loaded(Config(executors=[h]))
    assert h.max_workers_per_node == 3 and h.workers_per_node == 3


def test_block_id_manager_selector_prefers_the_newest_block(loaded):
    from taskscope.executors.high_throughput.manager_selector import BlockIdManagerSelector

    htex = HighThroughputExecutor(
        label="htex_local",
        max_workers_per_node=1,
        manager_selector=BlockIdManagerSelector(),
        provider=LocalProvider(init_blocks=2, max_blocks=2, min_blocks=2),
    )
    loaded(Config(executors=[htex]))
    wait_until(lambda: len(htex.connected_managers()) == 2, what="two managers")
    blocks = [worker_facts().result(timeout=60)["block"] for _ in range(10)]
    assert blocks == ["1"] * 10


def test_system_exit_in_a_task_is_worker_lost(loaded):
    from taskscope.executors.high_throughput.errors import WorkerLost

    @python_app
    def kill_worker():
        raise SystemExit(2)

    config = htex_local.fresh_config()
    config.executors[0].max_workers_per_node = 1
    loaded(config)
    for _ in range(3):
        with pytest.raises(WorkerLost, match="SystemExit"):
            kill_worker().result(timeout=60)
    assert dummy().result(timeout=60) is None


@python_app
def finished_at(parsl_resource_specification=None):
    import time

    return time.perf_counter_ns()  # one worker: one process's clock orders its tasks


def test_priority_orders_waiting_tasks_and_bad_keys_fail(loaded):
    from taskscope.executors.errors import InvalidResourceSpecification

    htex = HighThroughputExecutor(label="htex_local", max_workers_per_node=1)
    loaded(Config(executors=[htex]))
    assert htex.validate_resource_spec({}) is None
    assert htex.validate_resource_spec({"priority": 2}) is None
    with pytest.raises(InvalidResourceSpecification, match="num_nodes"):
        htex.validate_resource_spec({"num_nodes": 2})
    blocker = worker_facts(1.0)  # the only worker is busy while the others queue up
    wait_until(lambda: htex.outstanding == 1, what="the blocker to be sent")
    priorities = [10, 5, 7, 2, 9, 1, 10, 1, None, 3]
    futures = [
        (p, i, finished_at(parsl_resource_specification={} if p is None else {"priority": p}))
        for i, p in enumerate(priorities)
    ]
    blocker.result(timeout=60)
    done = sorted(futures, key=lambda item: item[2].result(timeout=60))
    order = [(p, i) for p, i, _ in done]
    # lower priority first, submission order among equals, no priority last
    assert order == sorted(order, key=lambda pi: (float("inf") if pi[0] is None else pi[0], pi[1]))
    with pytest.raises(InvalidResourceSpecification):
        finished_at(parsl_resource_specification={"cores": 2}).result(timeout=60)


ALTERNATE = os.path.join(
    os.path.dirname(__file__), "parsl_htex_configs", "htex_local_alternate.txt"
)


def test_parsl_htex_local_alternate_loads_and_runs_unchanged(in_tmp_cwd):
    """Parsl's htex_local_alternate.py, imports swapped and nothing else: its FTP/HTTP/zip
    staging providers and task_exit checkpointing exist (docs/compatibility.md)."""
    with open(ALTERNATE) as f:
        source = f.read()
    namespace: dict = {}
    exec(compile(source, ALTERNATE, "exec"), namespace)
    config = namespace["fresh_config"]()
    config.run_dir = str(in_tmp_cwd / "runinfo")
    htex = config.executors[0]
    with taskscope.load(config):
        facts = worker_facts().result(timeout=120)
    taskscope.clear()
    assert htex.label == "htex_Local" and facts["cwd"] == str(in_tmp_cwd)
    assert not os.path.exists(htex.working_dir)
    import glob
    import sqlite3

    (database,) = glob.glob(str(in_tmp_cwd / "**" / "monitoring.db"), recursive=True)
    with sqlite3.connect(database) as db:
        assert db.execute("select task_func_name from task").fetchall() == [("worker_facts",)]
