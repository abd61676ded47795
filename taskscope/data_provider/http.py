"""``HTTPInTaskStaging``: ``http://`` and ``https://`` inputs downloaded inside the task
(``parsl.data_provider.http``). The file lands in the executor's ``working_dir`` (or the
run's ``staging`` directory) under its own name, and ``File.filepath`` points there."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from taskscope.data_provider.files import File
from taskscope.data_provider.staging import Staging
from taskscope.data_provider.transfer import in_task_download, stage_in_local_path


class HTTPInTaskStaging(Staging):
    schemes: tuple[str, ...] = ("http", "https")

    def can_stage_in(self, file: File) -> bool:
        return file.scheme in self.schemes

    def stage_in(self, dm: Any, executor: str, file: File, parent_fut: Any) -> None:
        stage_in_local_path(file, dm.working_dir(executor))  # the task downloads it there

    def replace_task(self, dm: Any, executor: str, file: File, func: Callable) -> Callable:
        return in_task_download(func, file)


# Parsl's separate-task variant has the same effect here: the download runs in the task.
HTTPSeparateTaskStaging = HTTPInTaskStaging
