"""What every Parsl-style batch provider shares: blocks, worker layout, job-script pieces.

A provider is a description of batch jobs; it does not submit anything itself. The executor
turns it into a dask-jobqueue cluster with :meth:`BatchProvider.make_cluster`, where each
block is one batch job running one Dask worker command with one single-threaded worker
process per taskscope worker (so a worker runs one task at a time, as on the
HighThroughputExecutor).

Parameters that dask-jobqueue cannot honour are refused at construction with a message that
names them; the full mapping is in ``docs/cluster.md``.
"""

from __future__ import annotations

import math
import re
import sys
from dataclasses import dataclass
from typing import Any, ClassVar

from taskscope.cluster.launchers import launcher_prefix

DASK_MISSING = (
    "running on a batch scheduler needs Dask and dask-jobqueue: pip install taskscope[dask]"
)

# Slurm accepts "MM", "MM:SS", "HH:MM:SS", "D-HH", "D-HH:MM", "D-HH:MM:SS"; PBS "HH:MM:SS".
IDLE_SECONDS_BEFORE_SCALE_IN = 120

_WALLTIME = re.compile(r"^(\d+-)?\d+(:\d{1,2}){0,2}$")


class ProviderConfigError(ValueError):
    """A provider parameter taskscope cannot honour; the message says which and why."""


@dataclass(frozen=True)
class WorkerLayout:
    """How one batch job is filled: worker processes, CPUs booked, memory booked."""

    processes: int
    job_cpus: int
    memory_gb: float | None


def memory_request(gb: float, giga: str, mega: str) -> str:
    """A memory size as batch schedulers take it: whole GB, or whole MB when fractional."""
    if float(gb).is_integer():
        return f"{int(gb)}{giga}"
    return f"{math.ceil(gb * 1024)}{mega}"


def _reject_unknown(provider: str, given: dict[str, Any], unsupported: dict[str, str]) -> None:
    """Raise one error naming every parameter that cannot be used, with the reason for each."""
    if not given:
        return
    reasons = []
    for name in sorted(given):
        why = unsupported.get(name, "unknown parameter (check the spelling)")
        reasons.append(f"{name}: {why}")
    raise ProviderConfigError(
        f"{provider} does not support "
        + ", ".join(repr(n) for n in sorted(given))
        + " ("
        + "; ".join(reasons)
        + "). See docs/cluster.md for the supported parameters."
    )


def positive_int(provider: str, name: str, value: Any, minimum: int = 1) -> int:
    """``value`` if it is an int >= ``minimum``, else a ProviderConfigError naming it."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ProviderConfigError(
            f"{provider}: {name} must be an integer >= {minimum}, got {value!r}"
        )
    return value


class BatchProvider:
    """Common parameters of the Parsl batch providers (blocks, walltime, worker_init, ...)."""

    scheduler: ClassVar[str] = ""
    directive: ClassVar[str] = ""  # "#SBATCH" / "#PBS": the prefix of a scheduler directive
    # Parsl parameters that exist there but have no dask-jobqueue equivalent, and why.
    unsupported: ClassVar[dict[str, str]] = {
        "channel": "taskscope submits from this machine only (no SSH channels)",
        "cmd_timeout": "dask-jobqueue runs the submit command without a timeout",
        "move_files": "there are no channels that would move files",
        "regex_job_id": "dask-jobqueue parses the job id itself",
    }

    def __init__(
        self,
        *,
        nodes_per_block: int,
        init_blocks: int,
        min_blocks: int,
        max_blocks: int,
        parallelism: float,
        walltime: str,
        worker_init: str,
        scheduler_options: str,
        launcher: object,
        python: str | None,
        interface: str | None,
        log_directory: str | None,
        other: dict[str, Any],
    ) -> None:
        name = type(self).__name__
        _reject_unknown(name, other, self.unsupported)
        if nodes_per_block != 1:
            raise ProviderConfigError(
                f"{name}: nodes_per_block={nodes_per_block!r} is not supported: each block is a "
                "one-node batch job (dask-jobqueue starts one worker command per job). "
                "Use nodes_per_block=1 and raise max_blocks to use more nodes."
            )
        self.nodes_per_block = 1
        self.init_blocks = positive_int(name, "init_blocks", init_blocks, 0)
        self.min_blocks = positive_int(name, "min_blocks", min_blocks, 0)
        self.max_blocks = positive_int(name, "max_blocks", max_blocks, 1)
        if self.min_blocks > self.max_blocks:
            raise ProviderConfigError(
                f"{name}: min_blocks ({min_blocks}) is more than max_blocks ({max_blocks})"
            )
        if self.init_blocks > self.max_blocks:
            raise ProviderConfigError(
                f"{name}: init_blocks ({init_blocks}) is more than max_blocks ({max_blocks})"
            )
        if parallelism != 1:
            raise ProviderConfigError(
                f"{name}: parallelism={parallelism!r} is not supported: Dask's adaptive scaling "
                "decides how many blocks the queued tasks need; leave parallelism at 1"
            )
        self.parallelism = 1
        if not isinstance(walltime, str) or not _WALLTIME.match(walltime):
            raise ProviderConfigError(
                f"{name}: walltime must look like 'HH:MM:SS', got {walltime!r}"
            )
        self.walltime = walltime
        if not isinstance(worker_init, str) or not isinstance(scheduler_options, str):
            raise ProviderConfigError(f"{name}: worker_init and scheduler_options must be strings")
        self.worker_init = worker_init
        self.scheduler_options = scheduler_options
        self.launcher = launcher
        try:
            self._launcher_prefix = launcher_prefix(launcher, self.scheduler)
        except ValueError as e:
            raise ProviderConfigError(f"{name}: {e}") from None
        self.python = python or sys.executable
        self.interface = interface
        self.log_directory = log_directory

    # --- pieces the subclasses use -------------------------------------------------------

    def worker_layout(
        self, cores_per_worker: float, max_workers_per_node: int | None
    ) -> WorkerLayout:
        """Worker processes per job and the CPUs/memory the job books for them."""
        name = type(self).__name__
        cores = self.node_cores()
        if cores_per_worker <= 0:
            raise ProviderConfigError(f"{name}: cores_per_worker must be > 0")
        if cores is None:
            if max_workers_per_node is None:
                raise ProviderConfigError(
                    f"{name}: set {self.cores_parameter} on the provider (or "
                    "max_workers_per_node on the executor) so taskscope knows how many workers "
                    "each batch job starts"
                )
            processes = max_workers_per_node
            job_cpus = max(1, math.ceil(processes * cores_per_worker))
        else:
            processes = max(1, int(cores // cores_per_worker))
            if max_workers_per_node is not None:
                processes = min(processes, max_workers_per_node)
            job_cpus = cores
        return WorkerLayout(processes=processes, job_cpus=job_cpus, memory_gb=self.node_memory())

    def split_scheduler_options(self) -> tuple[list[str], list[str]]:
        """Parsl's ``scheduler_options`` text as (directives without prefix, other script lines)."""
        directives, lines = [], []
        for raw in self.scheduler_options.splitlines():
            line = raw.strip()
            if not line:
                continue
            if line.startswith(self.directive):
                directives.append(line[len(self.directive) :].strip())
            else:
                lines.append(line)
        return directives, lines

    def common_cluster_kwargs(
        self, label: str, layout: WorkerLayout, address: str | None
    ) -> dict[str, Any]:
        """dask-jobqueue keywords that mean the same on every scheduler."""
        directives, other_lines = self.split_scheduler_options()
        prologue = other_lines + ([self.worker_init] if self.worker_init.strip() else [])
        python = " ".join(p for p in (self._launcher_prefix, self.python) if p)
        # A free port for Dask's own dashboard: the default 8787 clashes between runs.
        scheduler_options: dict[str, Any] = {"dashboard_address": ":0"}
        if address:
            scheduler_options["host"] = address
        kwargs: dict[str, Any] = {
            "cores": layout.processes,  # one thread per worker process: one task at a time
            "processes": layout.processes,
            # Parsl's mem_per_node is Slurm's G (GiB); "0" means no worker memory limit.
            "memory": f"{layout.memory_gb}GiB" if layout.memory_gb else "0",
            "walltime": self.walltime,
            "job_name": f"taskscope-{label}",
            # Dask names each job "<label>-<n>": that is the block id in the monitoring rows.
            "name": label,
            "job_extra_directives": directives + self.extra_directives(),
            "job_script_prologue": prologue,
            "python": python,
            "log_directory": self.log_directory,
            "scheduler_options": scheduler_options,
            # taskscope retries tasks itself; a worker must not outlive an unreachable scheduler.
            "death_timeout": 60,
        }
        if self.interface:
            kwargs["interface"] = self.interface
        return kwargs

    # --- what a scheduler-specific provider defines ---------------------------------------

    cores_parameter: ClassVar[str] = "cores_per_node"

    def node_cores(self) -> int | None:
        raise NotImplementedError

    def node_memory(self) -> float | None:
        raise NotImplementedError

    def extra_directives(self) -> list[str]:
        """Directives (without their prefix) for the provider's own parameters."""
        raise NotImplementedError

    def scheduler_kwargs(self, layout: WorkerLayout) -> dict[str, Any]:
        """The keywords only this scheduler's cluster class takes (queue, account, sizes)."""
        raise NotImplementedError

    def cluster_class(self) -> type:
        """The dask-jobqueue cluster class (imported only now: Dask is optional)."""
        raise NotImplementedError

    # --- used by the executor -------------------------------------------------------------

    def cluster_kwargs(
        self,
        label: str,
        cores_per_worker: float = 1.0,
        max_workers_per_node: int | None = None,
        address: str | None = None,
    ) -> dict[str, Any]:
        """The keyword arguments of the matching dask-jobqueue cluster class."""
        layout = self.worker_layout(cores_per_worker, max_workers_per_node)
        return {
            **self.common_cluster_kwargs(label, layout, address),
            **self.scheduler_kwargs(layout),
        }

    def make_cluster(
        self,
        label: str,
        cores_per_worker: float = 1.0,
        max_workers_per_node: int | None = None,
        address: str | None = None,
    ) -> Any:
        """Start the dask-jobqueue cluster (its scheduler); no job is submitted yet."""
        kwargs = self.cluster_kwargs(label, cores_per_worker, max_workers_per_node, address)
        return self.cluster_class()(**kwargs)

    def job_script(
        self,
        label: str = "executor",
        cores_per_worker: float = 1.0,
        max_workers_per_node: int | None = None,
    ) -> str:
        """The batch script one block would be submitted with (starts and stops a scheduler)."""
        cluster = self.make_cluster(label, cores_per_worker, max_workers_per_node)
        try:
            return cluster.job_script()
        finally:
            cluster.close()

    def start_blocks(self, cluster: Any, adaptive: bool) -> None:
        """Submit ``init_blocks`` jobs; with ``adaptive`` let Dask scale between min and max."""
        if self.init_blocks:
            cluster.scale(jobs=self.init_blocks)
        if adaptive and self.max_blocks > self.min_blocks:
            # Parsl cancels a block after about two idle minutes; Dask's default is seconds,
            # which would cancel and resubmit batch jobs between every wave of tasks.
            cluster.adapt(
                minimum_jobs=self.min_blocks,
                maximum_jobs=self.max_blocks,
                interval="2s",
                wait_count=IDLE_SECONDS_BEFORE_SCALE_IN // 2,
            )

    def __repr__(self) -> str:
        shown = {k: v for k, v in vars(self).items() if not k.startswith("_")}
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in shown.items())})"


def positive_gb(provider: str, name: str, value: Any) -> float | None:
    """A memory size in GB (None allowed), else a ProviderConfigError naming it."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise ProviderConfigError(f"{provider}: {name} is in GB and must be > 0, got {value!r}")
    return value


def import_jobqueue() -> Any:
    """dask_jobqueue, or an ImportError that says what to install."""
    try:
        import dask_jobqueue
    except ImportError as e:
        raise ImportError(DASK_MISSING) from e
    return dask_jobqueue
