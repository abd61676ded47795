"""Parsl's executor module paths and the executor object's Parsl-facing API."""

from __future__ import annotations

import pickle

import pytest

import taskscope
from taskscope.executors import HighThroughputExecutor, ThreadPoolExecutor


def test_executor_error_classes_at_parsls_path():
    from taskscope.errors import ExecutorError as OwnExecutorError
    from taskscope.executors.errors import (
        BadMessage,
        BadStateException,
        ExecutorError,
        InvalidResourceSpecification,
        ScalingFailed,
        UnsupportedFeatureError,
    )

    assert ExecutorError is OwnExecutorError
    htex = HighThroughputExecutor(label="htex_local")
    # Parsl passes the executor itself; its label is what pickles and prints.
    bad = BadStateException(htex, RuntimeError("workers fail to start"))
    assert isinstance(bad, ExecutorError)
    assert bad.executor is htex and bad.executor_label == "htex_local"
    assert "workers fail to start" in str(bad)
    again = pickle.loads(pickle.dumps(bad))
    assert again.executor_label == "htex_local" and "workers fail to start" in str(again)
    assert str(ScalingFailed(htex, "no nodes")) == (
        "Executor htex_local failed to scale due to: no nodes"
    )
    assert str(UnsupportedFeatureError("mpi", "htex", None)) == (
        "The mpi feature is unsupported in htex."
    )
    spec = InvalidResourceSpecification({"cores"}, "only priority")
    assert spec.invalid_keys == {"cores"} and "only priority" in str(spec)
    assert str(BadMessage("junk")) == "Received an unsupported message. Reason:junk"


def test_high_throughput_errors_at_parsls_path():
    from taskscope.errors import WorkerLost as OwnWorkerLost
    from taskscope.executors.high_throughput.errors import ManagerLost, VersionMismatch, WorkerLost

    assert WorkerLost is OwnWorkerLost
    lost = WorkerLost("htex-0.1", "node1")  # Parsl's two-argument form
    assert "htex-0.1" in str(lost) and "node1" in str(lost)
    assert "manager abc on host h" in str(ManagerLost(b"abc", "h"))
    assert "does not match" in str(VersionMismatch("1", "2"))


def test_manager_selectors_order_like_parsls():
    from taskscope.executors.high_throughput.manager_selector import (
        BlockIdManagerSelector,
        ManagerSelector,
        RandomManagerSelector,
    )

    records = {m: {"block_id": b} for m, b in [("a", "0"), ("b", "2"), ("c", "1"), ("d", None)]}
    ordered = BlockIdManagerSelector().sort_managers(records, set(records))
    assert ordered == ["d", "a", "c", "b"]  # the preferred (highest block) last
    assert sorted(RandomManagerSelector().sort_managers(records, set(records))) == list("abcd")
    with pytest.raises(TypeError):
        ManagerSelector()  # abstract
    with pytest.raises(TypeError, match="manager_selector"):
        HighThroughputExecutor(manager_selector="block")


def test_parsl_executor_base_and_isinstance():
    from taskscope.executors.base import Executor, ParslExecutor

    assert ParslExecutor is Executor
    htex = HighThroughputExecutor(label="x")
    assert isinstance(htex, HighThroughputExecutor)
    assert isinstance(htex, taskscope.HighThroughputExecutor)
    assert not isinstance(ThreadPoolExecutor(), HighThroughputExecutor)
    assert htex.monitor_resources() is True
    # Parsl's outstanding() is a method, taskscope's a property: both spellings work.
    assert htex.outstanding == 0 and htex.outstanding() == 0


def test_executor_is_a_context_manager_that_shuts_down(tmp_path):
    htex = HighThroughputExecutor(label="ctx", max_workers_per_node=1)
    htex.prepare(str(tmp_path))
    with htex:
        htex.start()
        assert htex.submit(lambda: 6 * 7, {}).result(timeout=60) == 42
    from taskscope.errors import ExecutorError

    with pytest.raises(ExecutorError, match="not running"):
        htex.submit(lambda: 1, {})


def test_block_id_selector_with_int_ids_and_manager_record():
    from taskscope.executors.high_throughput.manager_record import ManagerRecord
    from taskscope.executors.high_throughput.manager_selector import BlockIdManagerSelector

    ready: dict[bytes, ManagerRecord] = {
        b"m1": {"block_id": 1},  # type: ignore[typeddict-item]
        b"m2": {"block_id": None},
        b"m3": {"block_id": 10},  # type: ignore[typeddict-item]
        b"m4": {"block_id": 2},  # type: ignore[typeddict-item]
    }
    assert BlockIdManagerSelector().sort_managers(ready, set(ready)) == [b"m2", b"m1", b"m4", b"m3"]


def test_logdir_and_worker_logdir_hold_the_worker_logs(tmp_path):
    htex = HighThroughputExecutor(label="logs", max_workers_per_node=1)
    htex.prepare(str(tmp_path / "run"))
    assert htex.logdir == htex.worker_logdir == str(tmp_path / "run" / "logs")
    other = HighThroughputExecutor(label="logs", worker_logdir_root=str(tmp_path / "w"))
    other.prepare(str(tmp_path / "run"))
    assert other.worker_logdir == str(tmp_path / "w" / "logs")
    with htex:
        htex.start()
        assert htex.submit(lambda: 1, {}).result(timeout=60) == 1
    assert (tmp_path / "run" / "logs" / "worker_0.log").exists()
