"""A Parsl HighThroughputExecutor configuration with a batch provider becomes a Dask executor."""

from __future__ import annotations

import pytest

pytest.importorskip("dask_jobqueue", reason="needs the dask extra: pip install taskscope[dask]")

from taskscope.cluster import SlurmProvider
from taskscope.errors import ConfigurationError
from taskscope.executors.dask import DaskExecutor


def test_htex_arguments_shape_the_batch_jobs():
    provider = SlurmProvider(partition="debug", cores_per_node=8, exclusive=False)
    ex = DaskExecutor.for_htex(
        label="htex_slurm",
        provider=provider,
        address="10.1.2.3",
        cores_per_worker=2,
        max_workers=3,  # Parsl's alias of max_workers_per_node
        worker_logdir_root="/scratch/logs",
        heartbeat_period=15,  # HTEX pool tuning: meaningless on Dask, accepted
        prefetch_capacity=4,
        available_accelerators=[],
    )
    assert isinstance(ex, DaskExecutor) and ex.label == "htex_slurm"
    kwargs = provider.cluster_kwargs(
        ex.label, ex.cores_per_worker, ex.max_workers_per_node, ex.worker_address
    )
    assert kwargs["processes"] == 3  # min(8 cores / 2 per worker, max_workers=3)
    assert kwargs["scheduler_options"]["host"] == "10.1.2.3"
    assert kwargs["log_directory"] == "/scratch/logs"
    assert kwargs["queue"] == "debug" and kwargs["job_cpu"] == 8


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"mem_per_worker": 4}, ["mem_per_worker=4"]),
        ({"cpu_affinity": "block"}, ["cpu_affinity='block'"]),
        ({"available_accelerators": ["0", "1"]}, ["available_accelerators"]),
        ({"interchange_launch_cmd": "x"}, ["interchange_launch_cmd"]),
    ],
)
def test_htex_arguments_that_would_change_tasks_are_refused(kwargs, words):
    with pytest.raises(ConfigurationError) as info:
        DaskExecutor.for_htex(label="h", provider=SlurmProvider(cores_per_node=1), **kwargs)
    for word in [*words, "docs/cluster.md"]:
        assert word in str(info.value)


def test_parsl_spelling_routes_to_dask():
    from taskscope.executors import HighThroughputExecutor

    provider = SlurmProvider(cores_per_node=2)
    ex = HighThroughputExecutor(label="htex", provider=provider, max_workers_per_node=2)
    assert isinstance(ex, DaskExecutor)
    assert ex.provider is provider and ex.max_workers_per_node == 2
