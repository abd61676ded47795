"""``ManagerRecord`` at Parsl's path: the record a ``ManagerSelector`` receives per manager.

Here a manager is a block of local workers; ``connected_managers()`` rows carry the keys
taskscope knows (``block_id``, ``worker_count``, ``active``, ``draining``, ``hostname``,
``parsl_version``, ``python_version``, and ``tasks`` as a count).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, TypedDict


class ManagerRecord(TypedDict, total=False):
    block_id: str | None
    start_time: float
    tasks: list[Any]
    worker_count: int
    max_capacity: int
    active: bool
    draining: bool
    hostname: str
    last_heartbeat: float
    idle_since: float | None
    timestamp: datetime
    parsl_version: str
    python_version: str
    packages: dict[str, str]
