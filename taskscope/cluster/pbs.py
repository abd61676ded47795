"""PBSProProvider: Parsl's PBS Pro provider, run as a dask_jobqueue.PBSCluster."""

from __future__ import annotations

from typing import Any

from taskscope.cluster.base import (
    BatchProvider,
    WorkerLayout,
    import_jobqueue,
    memory_request,
    positive_gb,
    positive_int,
)


class PBSProProvider(BatchProvider):
    """Blocks are PBS Pro jobs submitted with ``qsub``; parameters as in Parsl.

    The job asks for ``-l select=1:ncpus=<cpus_per_node>[:mem=<mem_per_node>GB]<select_options>``
    as Parsl's PBSProProvider does. ``mem_per_node`` (GB), ``python``, ``interface`` and
    ``log_directory`` are taskscope additions.
    """

    scheduler = "pbs"
    directive = "#PBS"
    cores_parameter = "cpus_per_node"

    def __init__(
        self,
        account: str | None = None,
        queue: str | None = None,
        scheduler_options: str = "",
        select_options: str = "",
        worker_init: str = "",
        nodes_per_block: int = 1,
        cpus_per_node: int = 1,
        mem_per_node: float | None = None,
        init_blocks: int = 1,
        min_blocks: int = 0,
        max_blocks: int = 1,
        parallelism: float = 1,
        launcher: object = None,
        walltime: str = "00:20:00",
        python: str | None = None,
        interface: str | None = None,
        log_directory: str | None = None,
        **other: Any,
    ) -> None:
        positive_int("PBSProProvider", "cpus_per_node", cpus_per_node)
        positive_gb("PBSProProvider", "mem_per_node", mem_per_node)
        if select_options and not select_options.startswith(":"):
            select_options = ":" + select_options
        self.account = account
        self.queue = queue
        self.select_options = select_options
        self.cpus_per_node = cpus_per_node
        self.mem_per_node = mem_per_node
        super().__init__(
            nodes_per_block=nodes_per_block,
            init_blocks=init_blocks,
            min_blocks=min_blocks,
            max_blocks=max_blocks,
            parallelism=parallelism,
            walltime=walltime,
            worker_init=worker_init,
            scheduler_options=scheduler_options,
            launcher=launcher,
            python=python,
            interface=interface,
            log_directory=log_directory,
            other=other,
        )

    def node_cores(self) -> int | None:
        return self.cpus_per_node

    def node_memory(self) -> float | None:
        return self.mem_per_node

    def extra_directives(self) -> list[str]:
        return []

    def scheduler_kwargs(self, layout: WorkerLayout) -> dict[str, Any]:
        kwargs: dict[str, Any] = {}
        spec = f"select=1:ncpus={layout.job_cpus}"
        if layout.memory_gb is not None:
            spec += ":mem=" + memory_request(layout.memory_gb, "gb", "mb")
        kwargs["resource_spec"] = spec + self.select_options
        kwargs["queue"] = self.queue
        kwargs["account"] = self.account
        return kwargs

    def cluster_class(self) -> type:
        return import_jobqueue().PBSCluster


# Parsl's TorqueProvider asks for nodes=1:ppn=N; PBS Pro's select syntax is what dask-jobqueue
# writes, so the plain name points at the PBS Pro provider.
PBSProvider = PBSProProvider
