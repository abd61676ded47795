"""``Staging``: the interface of Parsl's file staging providers (``parsl.data_provider.staging``).

taskscope moves no files itself: tasks read and write local paths on a shared file system.
A provider says which Files it can stage; the base class can stage none, and the stage/replace
hooks leave the task unchanged (returning None means "nothing to do").
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from taskscope.data_provider.files import File


class Staging:
    def can_stage_in(self, file: File) -> bool:
        return False

    def can_stage_out(self, file: File) -> bool:
        return False

    def stage_in(self, dm: Any, executor: str, file: File, parent_fut: Future | None) -> Any:
        return None

    def stage_out(self, dm: Any, executor: str, file: File, app_fu: Future) -> Future | None:
        return None

    def replace_task(self, dm: Any, executor: str, file: File, func: Callable) -> Callable | None:
        return None

    def replace_task_stage_out(
        self, dm: Any, executor: str, file: File, func: Callable
    ) -> Callable | None:
        return None

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"
