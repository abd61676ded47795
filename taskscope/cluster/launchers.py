"""Parsl-style launchers: how the worker command starts inside a batch job.

dask-jobqueue starts one worker command per job, and taskscope runs every block as a one-node
job, so only the launchers that make sense on one node exist here. Parsl's own launcher
objects are accepted too (matched by class name), so a config copied from Parsl keeps working.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SingleNodeLauncher:
    """Run the worker command directly in the batch script (Parsl's default)."""

    debug: bool = True

    def command_prefix(self) -> str:
        return ""


@dataclass(frozen=True)
class SrunLauncher:
    """Start the worker command as a job step with ``srun`` (Slurm only)."""

    debug: bool = True
    overrides: str = ""

    def command_prefix(self) -> str:
        return " ".join(part for part in ("srun --ntasks=1 --nodes=1", self.overrides) if part)


SUPPORTED_LAUNCHERS = ("SingleNodeLauncher", "SrunLauncher")


def launcher_prefix(launcher: object, scheduler: str) -> str:
    """The text to put before the worker's python, or a ValueError naming what is wrong."""
    if launcher is None:
        return ""
    name = type(launcher).__name__
    if name not in SUPPORTED_LAUNCHERS:
        raise ValueError(
            f"launcher={name}() is not supported: each taskscope block is a one-node job that "
            f"runs one worker command; use one of {', '.join(SUPPORTED_LAUNCHERS)}"
        )
    if name == "SrunLauncher" and scheduler != "slurm":
        raise ValueError(f"launcher=SrunLauncher() needs Slurm, not {scheduler}")
    if name == "SingleNodeLauncher":
        return ""
    overrides = getattr(launcher, "overrides", "") or ""
    return SrunLauncher(overrides=overrides).command_prefix()
