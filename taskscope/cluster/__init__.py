"""Batch-scheduler providers (Parsl-style) that run on dask-jobqueue clusters.

Importing this package does not import Dask; the cluster classes are imported only when a
provider builds its cluster.
"""

from taskscope.cluster.base import BatchProvider, ProviderConfigError, WorkerLayout
from taskscope.cluster.launchers import SingleNodeLauncher, SrunLauncher
from taskscope.cluster.pbs import PBSProProvider, PBSProvider
from taskscope.cluster.slurm import SlurmProvider

__all__ = [
    "BatchProvider",
    "PBSProProvider",
    "PBSProvider",
    "ProviderConfigError",
    "SingleNodeLauncher",
    "SlurmProvider",
    "SrunLauncher",
    "WorkerLayout",
]
