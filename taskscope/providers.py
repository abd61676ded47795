"""``LocalProvider``: blocks of workers on this machine (``parsl.providers.LocalProvider``)."""

from __future__ import annotations

from taskscope.launchers import Launcher, SingleNodeLauncher


def _non_negative_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"LocalProvider({name}=...) must be a non-negative int, got {value!r}")
    return value


class LocalProvider:
    """Where a HighThroughputExecutor's workers run: processes on this machine.

    A block is one set of ``max_workers_per_node`` workers; the executor starts
    ``max(init_blocks, min_blocks)`` blocks (at least one, at most ``max_blocks``) at start-up
    and keeps them for the run. ``worker_init`` is a shell snippet run before each worker
    starts (for example ``source env/bin/activate``).
    """

    def __init__(
        self,
        nodes_per_block: int = 1,
        launcher: Launcher | None = None,
        init_blocks: int = 1,
        min_blocks: int = 0,
        max_blocks: int = 1,
        worker_init: str = "",
        cmd_timeout: int = 30,
        parallelism: float = 1,
        channel: object = None,
        move_files: bool | None = None,
    ):
        self.nodes_per_block = _non_negative_int("nodes_per_block", nodes_per_block) or 1
        self.init_blocks = _non_negative_int("init_blocks", init_blocks)
        self.min_blocks = _non_negative_int("min_blocks", min_blocks)
        self.max_blocks = _non_negative_int("max_blocks", max_blocks)
        if self.min_blocks > self.max_blocks:
            raise ValueError(
                f"LocalProvider: min_blocks={min_blocks} exceeds max_blocks={max_blocks}"
            )
        if not isinstance(worker_init, str):
            raise TypeError(
                f"LocalProvider(worker_init=...) must be a str, got {type(worker_init).__name__}"
            )
        if launcher is not None and not isinstance(launcher, Launcher):
            raise TypeError(
                "LocalProvider(launcher=...) must be a launcher such as "
                f"SingleNodeLauncher(), got {type(launcher).__name__}"
            )
        if not 0 <= parallelism <= 1:
            raise ValueError(f"LocalProvider(parallelism=...) must be in [0, 1], got {parallelism}")
        self.launcher = launcher or SingleNodeLauncher()
        self.worker_init = worker_init
        self.cmd_timeout = cmd_timeout
        self.parallelism = parallelism
        self.channel = channel
        self.move_files = move_files
        self.label = "local"

    def blocks_to_start(self) -> int:
        """How many blocks to start with: what was asked for, at least one, at most max."""
        wanted = max(self.init_blocks, self.min_blocks, 1)
        return max(1, min(wanted, self.max_blocks or 1))

    def __repr__(self) -> str:
        return (
            f"LocalProvider(init_blocks={self.init_blocks}, min_blocks={self.min_blocks}, "
            f"max_blocks={self.max_blocks}, nodes_per_block={self.nodes_per_block})"
        )


# Batch schedulers run on dask-jobqueue clusters (taskscope/cluster/); importing them here
# keeps Parsl's import path and does not import Dask.
from taskscope.cluster import PBSProProvider, PBSProvider, SlurmProvider  # noqa: E402

__all__ = ["LocalProvider", "PBSProProvider", "PBSProvider", "SlurmProvider"]
