"""``NoOpFileStaging``: local files (``file://`` or a plain path) need no staging."""

from __future__ import annotations

from taskscope.data_provider.files import File
from taskscope.data_provider.staging import Staging


class NoOpFileStaging(Staging):
    def can_stage_in(self, file: File) -> bool:
        return file.scheme == "file"

    def can_stage_out(self, file: File) -> bool:
        return file.scheme == "file"
