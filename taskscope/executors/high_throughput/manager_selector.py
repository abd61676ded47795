"""Which block's workers get tasks first (``parsl.executors.high_throughput.manager_selector``).

In Parsl a manager is one worker pool (one per node of a block). Here every block is one
pool of local worker processes, so a "manager" is a block: ``sort_managers`` receives the
connected blocks (their ids and a record like the rows of ``connected_managers()``) and
returns them in order, the most preferred **last** (Parsl's interchange pops from the end).

``RandomManagerSelector`` (the default) spreads work evenly, as in Parsl; taskscope does it by
sending to the least loaded worker first rather than by shuffling. With any other selector,
tasks fill the preferred block's workers before the next block's.
"""

from __future__ import annotations

import random
from abc import ABCMeta, abstractmethod
from typing import Any

__all__ = ["BlockIdManagerSelector", "ManagerSelector", "RandomManagerSelector"]


class ManagerSelector(metaclass=ABCMeta):
    @abstractmethod
    def sort_managers(
        self, ready_managers: dict[Any, dict[str, Any]], manager_list: set[Any]
    ) -> list[Any]:
        """Order ``manager_list`` (keys of ``ready_managers``); the last is tried first."""


class RandomManagerSelector(ManagerSelector):
    """Spread tasks over every block (taskscope: least loaded worker first)."""

    def sort_managers(
        self, ready_managers: dict[Any, dict[str, Any]], manager_list: set[Any]
    ) -> list[Any]:
        managers = list(manager_list)
        random.shuffle(managers)
        return managers


class BlockIdManagerSelector(ManagerSelector):
    """Prefer the block with the highest id (the newest), as Parsl's selector does."""

    def sort_managers(
        self, ready_managers: dict[Any, dict[str, Any]], manager_list: set[Any]
    ) -> list[Any]:
        def key(manager: Any) -> tuple[bool, Any]:
            block_id = ready_managers[manager]["block_id"]
            return (block_id is not None, _numeric_first(block_id))

        return sorted(manager_list, key=key)


def _numeric_first(block_id: Any) -> tuple[int, Any]:
    # Parsl compares block ids as given; "10" < "9" as strings. Numeric ids sort as numbers.
    if isinstance(block_id, int) and not isinstance(block_id, bool):
        return (0, block_id)
    if isinstance(block_id, str) and block_id.isdigit():
        return (0, int(block_id))
    return (1, str(block_id))
