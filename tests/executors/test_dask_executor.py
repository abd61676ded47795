"""DaskExecutor on its own (no DataFlowKernel): results, errors, lost workers, node/block rows.

One local Dask cluster of two worker processes serves the whole module.
"""

from __future__ import annotations

import os
import socket
import threading
import time

import psutil
import pytest

pytest.importorskip("distributed", reason="needs the dask extra: pip install taskscope[dask]")

from taskscope.errors import ConfigurationError, SerializationError, WorkerLost
from taskscope.executors.dask import DaskExecutor
from taskscope.monitoring.messages import BlockInfo, NodeInfo


def _worker_identity() -> tuple[str, int, str | None]:
    return socket.gethostname(), os.getpid(), os.environ.get("TASKSCOPE_BLOCK_ID")


def _die() -> None:
    os._exit(7)


def _add(a: int, b: int = 0, priority: int = 0, key: str = "") -> tuple[int, str]:
    return a + b + priority, key


def _fail() -> None:
    raise KeyError("missing-thing")


@pytest.fixture(scope="module")
def messages() -> list:
    return []


@pytest.fixture(scope="module")
def executor(tmp_path_factory, messages):
    ex = DaskExecutor(label="dask_unit", n_workers=2, watch_interval=0.2)
    ex.run_dir = str(tmp_path_factory.mktemp("run"))
    ex.run_id = "run-unit"
    ex.monitoring_send = messages.append
    ex.start()
    yield ex
    ex.shutdown()


def test_results_come_back_with_app_keywords_intact(executor):
    # "priority" and "key" are client.submit options in Dask; they must reach the function.
    fut = executor.submit(_add, {}, 1, b=2, priority=3, key="k")
    assert fut.result(timeout=30) == (6, "k")


def test_tasks_run_in_two_worker_processes_that_know_their_block(executor):
    futures = [executor.submit(time.sleep, {}, 0.2) for _ in range(4)]
    identities = {executor.submit(_worker_identity, {}).result(timeout=30) for _ in range(20)}
    for f in futures:
        f.result(timeout=30)
    pids = {pid for _, pid, _ in identities}
    assert pids.isdisjoint({os.getpid()})
    assert all(host == socket.gethostname() for host, _, _ in identities)
    assert {block for _, _, block in identities} <= {"0", "1"}


def test_exceptions_pass_through_unchanged(executor):
    with pytest.raises(KeyError, match="missing-thing"):
        executor.submit(_fail, {}).result(timeout=30)


def test_unpicklable_argument_fails_the_task_naming_it(executor):
    fut = executor.submit(_add, {}, 1, b=threading.Lock())
    with pytest.raises(SerializationError, match="argument 'b' of '_add'"):
        fut.result(timeout=30)


def test_worker_dying_mid_task_is_worker_lost_and_the_executor_goes_on(executor):
    with pytest.raises(WorkerLost, match="lost while running this task"):
        executor.submit(_die, {}).result(timeout=60)
    # Dask's nanny replaces the worker; later tasks still run.
    assert executor.submit(_add, {}, 40, 2).result(timeout=60) == (42, "")


def test_node_and_block_rows_for_each_worker(executor, messages):
    executor.submit(_add, {}, 1).result(timeout=30)
    time.sleep(0.5)  # at least one poll after the replacement worker joined
    nodes = [m for m in messages if isinstance(m, NodeInfo)]
    blocks = [m for m in messages if isinstance(m, BlockInfo)]
    joined = {(n.block_id, n.uid) for n in nodes if n.active}
    assert {b for b, _ in joined} == {"0", "1"}
    assert all(n.hostname == socket.gethostname() and n.cpu_count >= 1 for n in nodes)
    assert all(n.run_id == "run-unit" for n in nodes + blocks)
    # The worker killed above left (an inactive row) and its replacement joined the same block.
    left = {(n.block_id, n.uid) for n in nodes if not n.active}
    assert left and left < joined
    states = {b.block_id: [x.status for x in blocks if x.block_id == b.block_id] for b in blocks}
    assert states == {"0": ["PENDING", "RUNNING"], "1": ["PENDING", "RUNNING"]}


def test_shutdown_ends_blocks_and_leaves_no_worker_process(tmp_path):
    sent: list = []
    ex = DaskExecutor(label="short_lived", n_workers=1)
    ex.run_dir, ex.run_id, ex.monitoring_send = str(tmp_path), "run-short", sent.append
    before = set(psutil.Process().children(recursive=True))
    ex.start()
    assert ex.submit(_add, {}, 1).result(timeout=30) == (1, "")
    children = [p for p in psutil.Process().children(recursive=True) if p not in before]
    assert len(children) >= 3  # scheduler, nanny, worker
    ex.shutdown()
    _gone, alive = psutil.wait_procs(children, timeout=15)
    assert not alive, [p.cmdline() for p in alive]
    ends = [m for m in sent if isinstance(m, BlockInfo) and m.status == "SCALED_IN"]
    assert [b.block_id for b in ends] == ["0"]
    assert [n.active for n in sent if isinstance(n, NodeInfo)] == [True, False]
    assert (tmp_path / "dask-short_lived" / "dask-worker-0.log").exists()
    with pytest.raises(Exception, match="not started"):
        ex.submit(_add, {}, 1)


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"address": "tcp://h:1", "n_workers": 1, "cluster": object()}, ["at most one"]),
        ({"cluster": object()}, ["Dask cluster object"]),
        ({"provider": object()}, ["batch provider"]),
        ({"n_workers": -1}, ["n_workers"]),
        ({"threads_per_worker": 0}, ["threads_per_worker"]),
        ({"address": ""}, ["scheduler address"]),
    ],
)
def test_bad_arguments_are_refused_at_construction(kwargs, words):
    with pytest.raises(ConfigurationError) as info:
        DaskExecutor(label="bad", **kwargs)
    for word in words:
        assert word in str(info.value)


def test_unreachable_scheduler_is_a_clear_error(monkeypatch):
    import taskscope.executors.dask as dask_module

    monkeypatch.setattr(dask_module, "CONNECT_TIMEOUT", "1s")
    ex = DaskExecutor(label="nowhere", address="tcp://127.0.0.1:9")
    with pytest.raises(Exception, match=r"cannot reach the Dask scheduler at tcp://127.0.0.1:9"):
        ex.start()
