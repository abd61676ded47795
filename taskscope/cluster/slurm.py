"""SlurmProvider: Parsl's Slurm provider, run as a dask_jobqueue.SLURMCluster."""

from __future__ import annotations

from typing import Any, ClassVar

from taskscope.cluster.base import (
    BatchProvider,
    ProviderConfigError,
    WorkerLayout,
    import_jobqueue,
    memory_request,
    positive_gb,
    positive_int,
)


class SlurmProvider(BatchProvider):
    """Blocks are Slurm jobs submitted with ``sbatch``; parameters as in Parsl.

    ``mem_per_node`` is in GB as in Parsl. ``python`` (the interpreter on the compute nodes,
    default: this one), ``interface`` (network interface the workers use) and
    ``log_directory`` (where job output goes) are taskscope additions.
    """

    scheduler = "slurm"
    directive = "#SBATCH"
    unsupported: ClassVar[dict[str, str]] = {
        **BatchProvider.unsupported,
        "clusters": "dask-jobqueue queries and cancels jobs without --clusters",
    }

    def __init__(
        self,
        partition: str | None = None,
        account: str | None = None,
        qos: str | None = None,
        constraint: str | None = None,
        nodes_per_block: int = 1,
        cores_per_node: int | None = None,
        mem_per_node: float | None = None,
        init_blocks: int = 1,
        min_blocks: int = 0,
        max_blocks: int = 1,
        parallelism: float = 1,
        walltime: str = "00:10:00",
        scheduler_options: str = "",
        worker_init: str = "",
        exclusive: bool = True,
        launcher: object = None,
        python: str | None = None,
        interface: str | None = None,
        log_directory: str | None = None,
        **other: Any,
    ) -> None:
        for name, value in (
            ("partition", partition),
            ("account", account),
            ("qos", qos),
            ("constraint", constraint),
        ):
            if value is not None and (not isinstance(value, str) or not value.strip()):
                raise ProviderConfigError(f"SlurmProvider: {name} must be a non-empty string")
        if cores_per_node is not None:
            positive_int("SlurmProvider", "cores_per_node", cores_per_node)
        positive_gb("SlurmProvider", "mem_per_node", mem_per_node)
        self.partition = partition
        self.account = account
        self.qos = qos
        self.constraint = constraint
        self.cores_per_node = cores_per_node
        self.mem_per_node = mem_per_node
        self.exclusive = bool(exclusive)
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
        return self.cores_per_node

    def node_memory(self) -> float | None:
        return self.mem_per_node

    def extra_directives(self) -> list[str]:
        directives = []
        if self.qos:
            directives.append(f"--qos={self.qos}")
        if self.constraint:
            directives.append(f"--constraint={self.constraint}")
        if self.exclusive:
            directives.append("--exclusive")
        return directives

    def scheduler_kwargs(self, layout: WorkerLayout) -> dict[str, Any]:
        kwargs: dict[str, Any] = {}
        kwargs["queue"] = self.partition
        kwargs["account"] = self.account
        kwargs["job_cpu"] = layout.job_cpus
        if layout.memory_gb is not None:
            # As Parsl writes it (--mem=<mem_per_node>g), in whole MiB when it is fractional.
            kwargs["job_mem"] = memory_request(layout.memory_gb, "G", "M")
        else:
            # Parsl books no memory when mem_per_node is unset; Slurm's --mem=0 would mean
            # "all of the node", so the directive is left out instead (job_mem is set only to
            # keep dask-jobqueue from formatting a zero size, which it cannot).
            kwargs["job_mem"] = "0"
            kwargs["job_directives_skip"] = ["--mem"]
        return kwargs

    def cluster_class(self) -> type:
        return import_jobqueue().SLURMCluster
