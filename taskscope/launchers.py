"""Launchers, as in ``parsl.launchers``.

On the local machine taskscope starts worker processes itself, so a launcher only records
how a batch scheduler would have started them; the classes exist so Parsl configs load.
"""

from __future__ import annotations


class Launcher:
    """Base class: wraps the worker command for a scheduler (unused for local workers)."""

    def __init__(self, debug: bool = True):
        self.debug = debug

    def __call__(self, command: str, tasks_per_node: int, nodes_per_block: int) -> str:
        return command

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class SimpleLauncher(Launcher):
    """Runs the command once per block."""


class SingleNodeLauncher(Launcher):
    """Runs ``tasks_per_node`` copies of the command on one node (Parsl's default)."""


# Slurm's job-step launcher lives with the batch providers that use it.
from taskscope.cluster.launchers import SrunLauncher  # noqa: E402, F401 - re-exported last
